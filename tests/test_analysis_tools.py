"""The analysis tools of the seeds' figures: linear separability per block
(Fig. 4) and linear CKA to an E2E model (Fig. 5), plus the UCI digits."""
import json
import os.path as osp

import pytest
import torch

from mmman.analysis import linear_cka, linear_probe_accuracy
from mmman.datasets import make_shapes_classification
from helpers import run_python

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DIGITS = osp.join(ROOT, 'configs', 'mmpretrain', 'digits')


def _hsic_cka(x, y):
    """CKA written out as HSIC with the centring matrix (Kornblith eq. 3)."""
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l = x.double() @ x.double().T, y.double() @ y.double().T
    hsic = lambda a, b: torch.trace(a @ h @ b @ h)  # noqa: E731
    return float(hsic(k, l) / (hsic(k, k) * hsic(l, l)).sqrt())


@pytest.mark.parametrize('dims', [(50, 8, 5), (20, 64, 40)])
def test_linear_cka_matches_hsic_and_its_invariances(dims):
    n, p, q = dims  # N > D (feature-space form) and N < D (Gram form)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, p, generator=g)
    y = x[:, :min(p, q)] @ torch.randn(min(p, q), q, generator=g) + \
        0.5 * torch.randn(n, q, generator=g)
    assert linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-9)
    assert 0.0 < linear_cka(x, y) < 1.0
    rotation, _ = torch.linalg.qr(torch.randn(p, p, generator=g))
    assert linear_cka(x, 3.0 * x @ rotation + 2.0) == pytest.approx(1.0)
    noise = torch.randn(n, q, generator=g)
    assert linear_cka(x, noise) < linear_cka(x, y)
    with pytest.raises(ValueError, match='same examples'):
        linear_cka(x, y[:-1])


def test_linear_probe_separates_what_is_separable_only():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    centres = 4.0 * torch.randn(3, 10, generator=g)
    x = centres[labels] + torch.randn(300, 10, generator=g)
    acc = linear_probe_accuracy(x[:200], labels[:200], x[200:], labels[200:])
    assert acc == 100.0
    shuffled = labels[torch.randperm(300, generator=g)]
    acc = linear_probe_accuracy(x[:200], shuffled[:200], x[200:],
                                shuffled[200:])
    assert acc < 60.0  # chance is 33%


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """An E2E and a MAN++ ResNet-20 (K=4) trained one epoch on tiny shapes."""
    tmp = tmp_path_factory.mktemp('analysis')
    data = make_shapes_classification(str(tmp / 'data'), 32, 16)
    config = osp.join(DIGITS, 'resnet32_man++-k16_1xb64-coslr-10e_digits.py')
    runs = {}
    for method in ('e2e', 'man++'):
        work = str(tmp / method)
        out = run_python(
            'tools/train.py', config, '--work-dir', work, '--cfg-options',
            'model.backbone.depth=20', 'optim_wrapper.local_cfg.num_blocks=4',
            f'optim_wrapper.local_cfg.method={method}',
            'train_cfg.max_epochs=1', 'train_dataloader.batch_size=16',
            'default_hooks.checkpoint.interval=1',
            *[f'{split}_dataloader.dataset.data_root={data}'
              for split in ('train', 'val', 'test')])
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        runs[method] = (osp.join(work, osp.basename(config)),
                        osp.join(work, 'epoch_1.pth'))
    return runs


def _outputs(out_dir, stem):
    paths = [osp.join(out_dir, f'{stem}.{ext}') for ext in ('json', 'md',
                                                           'png')]
    assert all(osp.getsize(p) > 0 for p in paths)
    with open(paths[0]) as f:
        return json.load(f), open(paths[1]).read()


def test_linear_separability_tool_writes_one_value_per_block(
        trained, tmp_path):
    out = run_python('tools/analysis_tools/linear_separability.py',
                     '--model', 'E2E', *trained['e2e'], '--model', 'MAN++',
                     *trained['man++'], '--pool', '2', '--out-dir',
                     str(tmp_path))
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    result, table = _outputs(str(tmp_path), 'linear_separability')
    # 10 units (stem + 9 residual units), larger blocks first: 3, 3, 2, 2
    assert result['units'] == ['backbone.layer1.1', 'backbone.layer2.1',
                               'backbone.layer3.0', 'backbone.layer3.2']
    for name in ('E2E', 'MAN++'):
        assert len(result['values'][name]) == 4
        assert all(0.0 <= v <= 100.0 for v in result['values'][name])
    assert '| 4 (backbone.layer3.2) |' in table


def test_cka_tool_compares_every_block_to_the_reference(trained, tmp_path):
    out = run_python('tools/analysis_tools/cka_similarity.py',
                     '--reference', *trained['e2e'], '--model', 'self',
                     *trained['e2e'], '--model', 'MAN++', *trained['man++'],
                     '--out-dir', str(tmp_path))
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    result, _ = _outputs(str(tmp_path), 'cka')
    assert result['values']['self'] == pytest.approx([1.0] * 4)
    assert all(0.0 < v < 1.0 for v in result['values']['MAN++'])


def test_uci_digits_are_written_with_a_fixed_stratified_split(tmp_path):
    import cv2

    from mmman.datasets import DIGIT_CLASSES, make_uci_digits
    root = make_uci_digits(str(tmp_path / 'digits'))
    counts = {
        split: [
            len(list((tmp_path / 'digits' / split / c).iterdir()))
            for c in DIGIT_CLASSES
        ]
        for split in ('train', 'val')
    }
    assert sum(counts['train']) + sum(counts['val']) == 1797
    for train, val in zip(counts['train'], counts['val']):
        assert abs(val / (train + val) - 0.2) < 0.01
    image = cv2.imread(osp.join(root, 'val', '3', sorted(
        (tmp_path / 'digits' / 'val' / '3').iterdir())[0].name))
    assert image.shape == (32, 32, 3) and image.max() > 128
    again = make_uci_digits(str(tmp_path / 'again'))
    assert sorted(p.name for p in (tmp_path / 'again' / 'val' / '3').iterdir(
    )) == sorted(p.name for p in (tmp_path / 'digits' / 'val' / '3').iterdir())
    assert again != root

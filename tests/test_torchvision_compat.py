"""torchvision imports through mmman where its C++ ops cannot load, and
nothing is defined where they load."""
import sys
import textwrap

import pytest

import mmman.utils.torchvision_compat as compat
from helpers import run_python

SCRIPT = textwrap.dedent("""
    import mmman
    import mmpretrain.models, torchvision, torch
    from mmman.utils.torchvision_compat import define_missing_torchvision_ops
    assert define_missing_torchvision_ops()  # already active: no 2nd log
    boxes = torch.tensor([[0., 0., 2., 2.], [0., 0., 2., 2.1]])
    try:
        torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
    except RuntimeError as e:
        print('NMS-ERROR', str(e).splitlines()[0])
    # torchvision's pure-Python part works: a transform and a model.
    img = torchvision.transforms.functional.hflip(torch.arange(6.).view(1, 2, 3))
    assert img[0, 0].tolist() == [2., 1., 0.]
    torchvision.models.resnet18(num_classes=3)
    print('IMPORT-OK')
""")


def test_mmpretrain_imports_after_mmman_and_says_so_once():
    out = run_python('-c', SCRIPT)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'IMPORT-OK' in out.stdout
    assert log.count("torchvision's C++ ops are unavailable") == 1
    # Calling a C++ op fails with torchvision's own clear message.
    assert "NMS-ERROR Couldn't load custom C++ ops" in out.stdout


def test_the_extension_is_found_without_importing_torchvision():
    path = compat.torchvision_extension()
    assert path is not None and path.endswith('.so')
    assert '_C' in path.rsplit('/', 1)[-1]


@pytest.fixture
def fresh(monkeypatch):
    """As if torchvision had not been imported and nothing defined yet."""
    monkeypatch.delitem(sys.modules, 'torchvision', raising=False)
    monkeypatch.setattr(compat, '_library', None)

    def no_library(*args, **kwargs):
        raise AssertionError('a torch.library.Library was created')

    import torch
    monkeypatch.setattr(torch.library, 'Library', no_library)
    monkeypatch.setattr(compat, '_nms_defined', lambda torch: False)
    return monkeypatch


def test_nothing_is_defined_where_torchvision_ops_load(fresh):
    loaded = []
    fresh.setattr(compat, 'torchvision_ops_load',
                  lambda path: loaded.append(path) or True)
    assert compat.define_missing_torchvision_ops() is False
    assert loaded == [compat.torchvision_extension()]
    assert compat._library is None


def test_nothing_is_done_without_torchvision_or_after_its_import(fresh):
    fresh.setattr(compat.importlib.util, 'find_spec', lambda name: None)
    assert compat.define_missing_torchvision_ops() is False
    fresh.undo()
    fresh.setitem(sys.modules, 'torchvision', object())
    fresh.setattr(compat, '_library', None)
    fresh.setattr(compat, '_nms_defined', lambda torch: False)
    fresh.setattr(compat, 'torchvision_ops_load',
                  lambda path: pytest.fail('must not probe'))
    assert compat.define_missing_torchvision_ops() is False


HOST_ALONE = textwrap.dedent("""
    import sys
    import mmdet.models, mmseg.models, mmpretrain.models  # torchvision too
    assert 'mmman' not in sys.modules
    print('HOST-ALONE-OK', 'mmman_torchvision_compat' in sys.modules)
""")


def test_host_libraries_import_without_mmman():
    """The start-up hook tools/install.sh puts in the virtualenv lets MMDet,
    MMSeg and MMPretrain import torchvision in a process without mmman (a
    checkpoint evaluated by the host library alone), and says so once."""
    out = run_python('-c', HOST_ALONE)
    log = out.stdout + out.stderr
    assert 'HOST-ALONE-OK True' in out.stdout, log[-3000:]
    assert log.count("torchvision's C++ ops are unavailable") == 1

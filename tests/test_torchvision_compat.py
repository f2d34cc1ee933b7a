"""torchvision imports through mmman where its C++ ops cannot load, and
nothing is defined where they load; the virtualenv's start-up hook is a copy
written only where needed, silent when missing, soft when it fails."""
import importlib.util
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
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


ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HOOK_SCRIPT = osp.join(ROOT, 'tools', 'misc', 'install_torchvision_hook.py')
SOURCE = osp.join(ROOT, 'mmman', 'utils', 'torchvision_compat.py')
PURELIB = sysconfig.get_paths()['purelib']
HOOK_WARNING = "could not prepare torchvision's import"


def start_python(code, site_dir=None):
    """A fresh interpreter that skips the virtualenv's own ``.pth`` files
    (``-S``): ``site_dir``'s run as at start-up, then the virtualenv's
    packages go on ``sys.path``."""
    prelude = 'import site, sys\n'
    if site_dir:
        prelude += f'site.addsitedir({str(site_dir)!r})\n'
    prelude += f'sys.path.append({PURELIB!r})\n'
    return subprocess.run([sys.executable, '-S', '-c', prelude + code],
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_the_hook_is_a_copy_that_survives_a_moved_checkout(tmp_path):
    """install.sh's step (tools/misc/install_torchvision_hook.py) copies the
    module, replacing an earlier install's symlink without writing through
    it; moving the checkout afterwards leaves every start clean and the hook
    working."""
    checkout = tmp_path / 'checkout'
    (checkout / 'tools' / 'misc').mkdir(parents=True)
    (checkout / 'mmman' / 'utils').mkdir(parents=True)
    shutil.copy(HOOK_SCRIPT, checkout / 'tools' / 'misc')
    module_src = checkout / 'mmman' / 'utils' / 'torchvision_compat.py'
    shutil.copy(SOURCE, module_src)
    site_dir = tmp_path / 'site'
    site_dir.mkdir()
    (site_dir / 'mmman_torchvision_compat.py').symlink_to(module_src)
    script = checkout / 'tools' / 'misc' / 'install_torchvision_hook.py'
    out = subprocess.run(
        [sys.executable, str(script), str(site_dir), '--force'],
        capture_output=True,
        text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    hook = site_dir / 'mmman_torchvision_compat.py'
    assert hook.is_file() and not hook.is_symlink()
    assert hook.read_text() == module_src.read_text() == open(SOURCE).read()
    pth = (site_dir / 'mmman_torchvision_compat.pth').read_text()
    assert pth.count('\n') == 1 and pth.startswith('import ')
    assert 'exec' not in pth and 'eval' not in pth
    assert sorted(os.listdir(site_dir)) == [
        'mmman_torchvision_compat.pth', 'mmman_torchvision_compat.py'
    ]
    shutil.move(str(checkout), str(tmp_path / 'moved'))
    out = start_python(
        'import torchvision\n'
        'print("TV-OK", sys.modules["mmman_torchvision_compat"].__file__)',
        site_dir)
    assert 'Traceback' not in out.stderr, out.stderr[-3000:]
    assert 'Error processing line' not in out.stderr
    assert out.returncode == 0, out.stderr[-3000:]
    assert f'TV-OK {hook}' in out.stdout


def test_the_pth_line_does_nothing_without_the_module(tmp_path):
    """A copy removed (or an old install's link left dangling): no output."""
    compat.write_import_hook(str(tmp_path))
    os.unlink(tmp_path / 'mmman_torchvision_compat.py')
    (tmp_path / 'mmman_torchvision_compat.py').symlink_to(tmp_path / 'gone')
    out = start_python('print("STARTED", "mmman_torchvision_compat" in '
                       'sys.modules)', tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, 'STARTED False\n',
                                                        '')


BROKEN_HOOK = textwrap.dedent("""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'mmman_torchvision_compat', {source!r})
    hook = importlib.util.module_from_spec(spec)
    sys.modules['mmman_torchvision_compat'] = hook
    spec.loader.exec_module(hook)
    define = hook.define_missing_torchvision_ops

    def broken():  # a broken torch, say, or a failing log call
        if {defined_first}:
            define()
        raise RuntimeError('torch is broken\\nsecond line')

    hook.define_missing_torchvision_ops = broken
    hook.install_import_hook()
    try:
        import torchvision
        print('IMPORT-OK', hasattr(torchvision, 'transforms'))
    except Exception as e:
        print('IMPORT-ERROR', type(e).__name__, str(e).splitlines()[0])
""")


@pytest.mark.parametrize('defined_first', [True, False])
def test_a_failing_hook_warns_once_and_the_import_goes_on(defined_first):
    out = start_python(
        BROKEN_HOOK.format(source=SOURCE, defined_first=defined_first))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count(HOOK_WARNING) == 1, out.stderr[-3000:]
    assert 'RuntimeError: torch is broken' in out.stderr
    assert 'second line' not in out.stderr and 'Traceback' not in out.stderr
    # the hook's error never stops the import: torchvision's own may
    assert 'torch is broken' not in out.stdout, out.stdout
    if defined_first:  # the schemas are there: torchvision imports
        assert 'IMPORT-OK True' in out.stdout, out.stdout


@pytest.fixture
def hook_script(monkeypatch):
    """tools/misc/install_torchvision_hook.py in this process, deciding with
    this module (its loading of torchvision's ops mocked)."""
    spec = importlib.util.spec_from_file_location('_install_hook',
                                                  HOOK_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, 'load_compat', lambda: compat)
    monkeypatch.setattr(sys, 'meta_path', list(sys.meta_path))
    return script


def stale_hook(site_dir):
    (site_dir / 'mmman_torchvision_compat.py').symlink_to(site_dir / 'gone')
    (site_dir / 'mmman_torchvision_compat.pth').write_text(
        'import mmman_torchvision_compat\n')


def test_the_hook_is_written_only_where_torchvision_ops_do_not_load(
        tmp_path, monkeypatch, hook_script):
    stale_hook(tmp_path)
    monkeypatch.setattr(compat, 'torchvision_ops_load', lambda path: True)
    hook_script.main([str(tmp_path)])
    assert os.listdir(tmp_path) == []  # stale link and line removed

    stale_hook(tmp_path)
    monkeypatch.setattr(compat, 'torchvision_ops_load', lambda path: False)
    hook_script.main([str(tmp_path)])
    hook = tmp_path / 'mmman_torchvision_compat.py'
    assert hook.is_file() and not hook.is_symlink()
    assert (tmp_path / 'mmman_torchvision_compat.pth').read_text() == \
        compat.PTH_LINE

    monkeypatch.setattr(compat.importlib.util, 'find_spec', lambda name: None)
    hook_script.main([str(tmp_path)])  # no torchvision: nothing to do
    assert os.listdir(tmp_path) == []


def test_the_virtualenv_hook_is_a_current_copy():
    """What tools/install.sh left in this environment's site-packages."""
    module = osp.join(PURELIB, 'mmman_torchvision_compat.py')
    if not osp.lexists(module):
        pytest.skip('no start-up hook here (torchvision\'s ops load, or '
                    'not installed by tools/install.sh)')
    assert not osp.islink(module), 'a link into the checkout: re-run ' \
        'tools/install.sh'
    assert open(module).read() == open(SOURCE).read(), 're-run install.sh'
    with open(osp.join(PURELIB, 'mmman_torchvision_compat.pth')) as f:
        assert f.read() == compat.PTH_LINE

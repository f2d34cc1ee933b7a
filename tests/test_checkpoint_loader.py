"""The local checkpoint loader mmman registers stays safe, and is installed
only where mmman asks for it (tools, LocalLearningHook's run), never by an
import."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

import mmman  # noqa: F401
from mmman.utils import mmengine_checkpoints_allowed


@pytest.fixture(autouse=True)
def safe_loader():
    with mmengine_checkpoints_allowed():
        yield


def _local_loader_name(code=''):
    script = (f'{code}\nfrom mmengine.runner import CheckpointLoader\n'
              "print(CheckpointLoader._get_checkpoint_loader('').__name__)")
    out = subprocess.run([sys.executable, '-c', script], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def test_importing_mmman_installs_no_loader():
    assert _local_loader_name('import mmman') == _local_loader_name() == \
        'load_from_local'


def test_local_learning_hook_scopes_the_loader_to_its_run():
    from mmengine.runner.checkpoint import load_from_local

    from mmman.engine import LocalLearningHook
    from mmman.utils import restore_checkpoint_loader
    from mmman.utils.checkpoint import load_local_checkpoint
    outer = CheckpointLoader._get_checkpoint_loader('')  # the fixture's
    restore_checkpoint_loader(load_from_local)  # MMEngine's own
    try:
        hook = LocalLearningHook()
        hook.before_run(runner=None)
        assert CheckpointLoader._get_checkpoint_loader('') is \
            load_local_checkpoint
        hook.after_run(runner=None)
        assert CheckpointLoader._get_checkpoint_loader('') is load_from_local
    finally:
        restore_checkpoint_loader(outer)


class _Custom:
    """Any class of the user's: its unpickling could run its code."""


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null', ))


def test_loads_history_buffers_and_numpy(tmp_path):
    buf = HistoryBuffer()
    buf.update(1.5)
    path = str(tmp_path / 'ok.pth')
    torch.save({'message_hub': {'b': buf}, 'w': torch.ones(2)}, path)
    with pytest.raises(pickle.UnpicklingError):  # torch's default refuses
        torch.load(path)
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert ckpt['message_hub']['b'].current() == 1.5
    assert torch.equal(ckpt['w'], torch.ones(2))


def test_refuses_arbitrary_code(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError, match='posix.system|os.system'):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')


def test_refuses_a_custom_class_with_a_clear_message(tmp_path):
    path = str(tmp_path / 'custom.pth')
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': _Custom()}, path)
    with pytest.raises(pickle.UnpicklingError) as error:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    message = str(error.value)
    assert path in message
    assert 'refers to test_checkpoint_loader._Custom, which mmman does not ' \
        'load' in message
    assert 'never code' in message


def test_allowlist_lasts_only_for_the_load(tmp_path):
    """Loading adds nothing to torch's global allowlist and keeps what the
    user added there."""
    path = str(tmp_path / 'hub.pth')
    buf = HistoryBuffer()
    buf.update(2.0)
    torch.save({'b': buf, 'a': np.zeros(2)}, path)
    with torch.serialization.safe_globals([np.ndarray]):  # the user's
        before = set(torch.serialization.get_safe_globals())
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
        assert set(torch.serialization.get_safe_globals()) == before
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)


def test_refuses_getattr_beyond_history_buffer_statistics(tmp_path):
    path = str(tmp_path / 'getattr.pth')

    class _Sneaky:

        def __reduce__(self):
            return (getattr, (torch.ones(1), 'numpy'))

    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(pickle.UnpicklingError, match='refused getattr'):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')


def test_refuses_other_attributes_of_allowed_classes(tmp_path):
    path = str(tmp_path / 'update.pth')

    class _Update:

        def __reduce__(self):
            return (getattr, (HistoryBuffer, 'update'))

    torch.save({'x': _Update()}, path)
    with pytest.raises(pickle.UnpicklingError,
                       match=r"refused getattr\(HistoryBuffer, 'update'\)"):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')

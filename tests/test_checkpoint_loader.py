"""The local checkpoint loader mmman registers stays safe."""
import os
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

import mmman  # noqa: F401


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


def test_refuses_getattr_beyond_history_buffer_statistics(tmp_path):
    path = str(tmp_path / 'getattr.pth')

    class _Sneaky:

        def __reduce__(self):
            return (getattr, (torch.ones(1), 'numpy'))

    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(pickle.UnpicklingError, match='refused getattr'):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')

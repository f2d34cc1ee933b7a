import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _drop_checkpoints(request):
    """Delete the checkpoints a test wrote under its ``tmp_path`` when it
    ends: the zoo round trips save real-size models (~1 GB a file), and a
    run must not fill the disk. Directories stay: MMEngine's visualizer and
    logger are global instances named by the second a Runner started, so a
    Runner of the next test may still write into this one's work dir."""
    yield
    tmp = request.node.funcargs.get('tmp_path')
    if tmp is not None:
        for path in Path(tmp).rglob('*.pth'):
            path.unlink(missing_ok=True)

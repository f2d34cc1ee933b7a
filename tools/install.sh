#!/usr/bin/env bash
# Create/refresh the project virtualenv `.venv` with the pinned stack.
# Idempotent: a stamp holding the hash of requirements.txt + this script makes
# a second run return at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMMAN_VENV:-$ROOT/.venv}"
STAMP="$VENV/.mmman-installed"
WANT="$(cat "$ROOT/requirements.txt" "$ROOT/tools/install.sh" "$ROOT/setup.py" \
    "$ROOT/mmman/utils/torchvision_compat.py" "$ROOT/tools/misc/install_torchvision_hook.py" \
    | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    exit 0
fi
echo "[mmman] installing into $VENV (first run builds mmcv from source: ~7 min on 2 cores)" >&2
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip<25" "setuptools<70" wheel
# torch first, alone, so that nothing below resolves a CUDA build from the index.
"${PIP[@]}" install -q "torch==2.13.0"
# torchvision (MMPretrain imports it): its only wheel for torch 2.13 links the
# CUDA torch; --no-deps keeps pip from replacing our CPU torch. Its C++ ops do
# not load; mmman makes its Python part importable (utils/torchvision_compat.py).
"${PIP[@]}" install -q --no-deps "torchvision==0.28.0"
# headless OpenCV before mmcv: mmcv's setup picks the installed OpenCV flavour.
# (torch drags in a new setuptools; mmcv's setup.py needs pkg_resources: re-pin.)
"${PIP[@]}" install -q "setuptools<70" "numpy==1.26.4" "opencv-python-headless==4.10.0.84" ninja psutil
# mmcv 2.1.0 has no CPU wheel: build the sdist with ops against the installed torch.
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops" 2>/dev/null; then
    MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" "${PIP[@]}" install -q --no-build-isolation "mmcv==2.1.0"
fi
"${PIP[@]}" install -q -r "$ROOT/requirements.txt"
"${PIP[@]}" install -q --no-build-isolation --no-deps -e "$ROOT"
# Processes that never import mmman (MMDet/MMSeg/MMPretrain evaluating a
# checkpoint alone) import torchvision too: where its C++ ops do not load into
# the installed torch, a start-up hook defines its two missing operator
# schemas when torchvision is first imported. The script decides with
# torchvision_compat.py loaded from its file (not mmman), copies that file
# into site-packages (a copy: the venv keeps working if the checkout moves)
# with a .pth line, or removes both where the ops load.
# See mmman/utils/torchvision_compat.py.
SITE="$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
"$VENV/bin/python" "$ROOT/tools/misc/install_torchvision_hook.py" "$SITE"
"$VENV/bin/python" -c "import mmseg.models, sys; assert 'mmman' not in sys.modules" >&2
"$VENV/bin/python" -c "import mmman, torch, torchvision, mmcv.ops, mmdet, mmseg, mmpretrain.models; print('[mmman] stack ok: torch', torch.__version__, 'torchvision', torchvision.__version__, 'mmcv', mmcv.__version__)" >&2
echo "$WANT" > "$STAMP"

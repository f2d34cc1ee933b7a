#!/usr/bin/env bash
# Install (.venv, idempotent) and run the test suite. Extra arguments go to
# pytest, e.g. `bash tools/run_tests.sh -k ddp`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/install.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -q "$@"

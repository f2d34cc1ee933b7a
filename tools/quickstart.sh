#!/usr/bin/env bash
# Install (.venv, idempotent) and run the quick-start job: MAN++ training and
# evaluation on a generated dataset. Extra arguments go to tools/demo.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/install.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" tools/demo.py "$@"

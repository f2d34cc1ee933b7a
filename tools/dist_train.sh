#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]
# One process per GPU; without an accelerator the processes run on CPU and
# communicate with gloo. Env: see tools/misc/dist_run.sh.
TOOLS="$(cd "$(dirname "$0")" && pwd)"
exec bash "$TOOLS/misc/dist_run.sh" "$TOOLS/train.py" "$2" "$1" "${@:3}"

#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]
# One process per GPU; without an accelerator the processes run on CPU and
# communicate with gloo. Env: see tools/misc/dist_run.sh.
TOOLS="$(cd "$(dirname "$0")" && pwd)"
exec bash "$TOOLS/misc/dist_run.sh" "$TOOLS/test.py" "$3" "$1" "$2" "${@:4}"

#!/usr/bin/env bash
# Usage: bash tools/misc/dist_run.sh SCRIPT NUM_PROCS [SCRIPT args...]
# Runs SCRIPT (tools/train.py or tools/test.py) in NUM_PROCS processes with
# torchrun and `--launcher pytorch`: one process per GPU; without an
# accelerator the processes run on CPU and communicate with gloo.
# Env: PORT (default 29500), NNODES, NODE_RANK, MASTER_ADDR,
# PYTHON (default .venv/bin/python of this checkout, installed if missing).
set -e
SCRIPT=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$ROOT/.venv/bin/python"
    [[ -x "$PYTHON" ]] || bash "$ROOT/tools/install.sh"  # README's .venv
fi
PYTHONPATH="$ROOT":$PYTHONPATH \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$SCRIPT" "${@:3}" --launcher pytorch

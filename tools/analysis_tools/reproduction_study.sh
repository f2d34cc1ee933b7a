#!/usr/bin/env bash
# Does it reproduce? The MAN/MAN++ seeds' CIFAR-10 ResNet-32 study on the real
# UCI digits (docs/results.md, "Does it reproduce?"): every row at K=16, the
# core rows (and MAN++ per-channel) at K=8, 5 seeds, two trainings at a time (one core each), and a
# 30-epoch check of the schedule for DGL, InfoPro and PredSim (seeds 0-1).
# Resumable: finished runs are read, not redone. Then the analysis tools on
# seed 0 of E2E, DGL, DGL + MAN and DGL + MAN++ (K=16).
#
#     bash tools/analysis_tools/reproduction_study.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
WORK=${1:-work_dirs/digits_study}
SEEDS=${SEEDS:-0 1 2 3 4}
JOBS=${JOBS:-2}
CFG=configs/mmpretrain/digits
L=optim_wrapper.local_cfg
$PY tools/misc/generate_dataset.py digits data/uci_digits

# Base objective DGL (its MLP-SR aux net); each row one or two fields away.
E2E=(--variant e2e $L.method=e2e)
DGL=(--variant dgl $L.method=local)
MAN=(--variant dgl+man $L.method=man)
MANPP=(--variant dgl+man++ $L.method=man++)
ABLATIONS=(
  --variant dgl+ema-only $L.method=man $L.eta.learnable_copy=False
  --variant dgl+no-ema $L.method=man $L.eta.learnable_copy=False
            $L.eta.momentum=0.0
)
MANPP_CHANNEL=(--variant dgl+man++-channel $L.method=man++
               $L.eta.balance=None $L.eta.scale_bias.type=ChannelScaleBias)
SEED_METHODS=(
  --variant infopro $L.method=local $L.objective=infopro
  --variant infopro+man++ $L.method=man++ $L.objective=infopro
  --variant predsim $L.method=local $L.objective=predsim
  --variant predsim+man++ $L.method=man++ $L.objective=predsim
  --variant mlaan $L.method=mlaan
  --variant mlaan+man $L.method=mlaan+man
)
compare_as() {  # SUFFIX K rows...: work dir k<K><SUFFIX>, docs JSON likewise
  local name=$1 k=$2
  shift 2
  $PY tools/analysis_tools/compare_methods.py \
    $CFG/resnet32_man++-k${k}_1xb64-coslr-10e_digits.py "$@" \
    --seeds $SEEDS --jobs "$JOBS" --metric accuracy/top1 --error \
    --baseline dgl --reference e2e --work-dir "$WORK/k$k$name" \
    --out docs/results_digits_k$k$name.json
}
compare() {  # K, rows...
  compare_as '' "$@"
}
compare 16 "${E2E[@]}" "${DGL[@]}" "${ABLATIONS[@]}" "${MAN[@]}" \
  "${MANPP[@]}" "${MANPP_CHANNEL[@]}" "${SEED_METHODS[@]}"
compare 8 "${E2E[@]}" "${DGL[@]}" "${MAN[@]}" "${MANPP[@]}" "${MANPP_CHANNEL[@]}"

# Investigation: InfoPro and PredSim trail DGL by 7-8 points at 10 epochs.
# Is it the short schedule? The same rows at 30 epochs, seeds 0-1.
E30="train_cfg.max_epochs=30 train_cfg.val_interval=30 param_scheduler.T_max=30"
E30="$E30 param_scheduler.end=30 default_hooks.checkpoint.interval=30"
# shellcheck disable=SC2086  # word splitting of E30 is intended
SEEDS="0 1" compare_as -30e 16 \
  --variant e2e $L.method=e2e $E30 --variant dgl $L.method=local $E30 \
  --variant infopro $L.method=local $L.objective=infopro $E30 \
  --variant predsim $L.method=local $L.objective=predsim $E30

# The seeds' Figs. 4 and 5 on seed 0 (K=16): linear separability of every
# block (global-average-pooled features, and 4x4-pooled) and linear CKA of
# every block to the E2E model (another E2E seed as the ceiling).
CKPT=resnet32_man++-k16_1xb64-coslr-10e_digits
model() {  # NAME RUN
  echo --model "$1" "$WORK/k16/$2/$CKPT.py" "$WORK/k16/$2/epoch_10.pth"
}
MODELS="$(model E2E e2e_seed0) $(model DGL dgl_seed0) $(model DGL+MAN dgl+man_seed0) $(model DGL+MAN++ dgl+man++_seed0)"
for POOL in 1 4; do
  # shellcheck disable=SC2086  # word splitting of MODELS is intended
  $PY tools/analysis_tools/linear_separability.py $MODELS --pool $POOL \
    --out-dir docs/analysis/digits_k16_pool$POOL
done
# shellcheck disable=SC2086
$PY tools/analysis_tools/cka_similarity.py \
  --reference "$WORK/k16/e2e_seed0/$CKPT.py" "$WORK/k16/e2e_seed0/epoch_10.pth" \
  $(model E2E-seed1 e2e_seed1) \
  $(model DGL dgl_seed0) $(model DGL+MAN dgl+man_seed0) $(model DGL+MAN++ dgl+man++_seed0) \
  --out-dir docs/analysis/digits_k16

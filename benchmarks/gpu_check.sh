#!/usr/bin/env bash
# The GPU check in one command, for anyone holding a GPU machine (issue 30): about 8 minutes on one H200.
#
#   benchmarks/gpu_check.sh          # on the GPU machine, from the repository, after `make setup`
#   benchmarks/gpu_check.sh --cpu    # the same steps on a CPU with the offline ladder and a tiny shape (a dry run)
#
# Steps, each timed: (1) the device's memory bandwidth, failing loudly below 80% of its published figure (a
# broken measurement or a throttled GPU); (2) the GPU-marked tests (tests/test_gpu.py: bf16 first-step logits of
# the compiled static decode against eager, CUDA peaks, offload); (3) a bf16 `sizebench bench` of random-weight
# rungs of the three Dolly shapes, once with `--decode static` and once with `--decode eager`; (4) the
# plain-transformers anchors (benchmarks/anchors.py: model.generate eager and static on the 3b shape); (5) one
# table of all of it appended to benchmarks/RESULTS.md (benchmarks/gpu_table.py). Hub kernels stay off
# (USE_HUB_KERNELS=NO): nothing is downloaded at run time.
# Everything lands in gpu-check/<time>/ (GPU_CHECK_OUT to choose); PYTHON picks the interpreter (.venv's by
# default); MODELS replaces the rungs. Exit 1 when a step fails, with the step named.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export USE_HUB_KERNELS=NO PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${GPU_CHECK_OUT:-gpu-check/$(date -u +%Y%m%d-%H%M%S)}
BUDGET_S=480

if [ "${1:-}" = "--cpu" ]; then
  DEVICE=cpu DTYPE=float32 SHAPE=tiny BATCH=2 NEW=16 PROMPTS=3 LIMIT=5
  MODELS=${MODELS:-smollm2-135m,gemma3-270m}
  WEIGHTS=()
  APPEND=${GPU_CHECK_APPEND:-$OUT/RESULTS.md}  # a dry run does not write the benchmark record
  # a CPU has no published bandwidth here: PUBLISHED_GB_S (GB/s) turns the 80% check on
  LIMIT_ARGS=(${PUBLISHED_GB_S:+--min-share 0.8 --published-gb-s "$PUBLISHED_GB_S"})
elif [ -n "${1:-}" ]; then
  echo "usage: benchmarks/gpu_check.sh [--cpu]" >&2
  exit 2
else
  DEVICE=cuda DTYPE=bfloat16 SHAPE=dolly-v2-3b BATCH=8 NEW=64 PROMPTS=10 LIMIT=20
  MODELS=${MODELS:-dolly-v2-3b,dolly-v2-7b,dolly-v2-12b}
  WEIGHTS=(--weights random)
  APPEND=${GPU_CHECK_APPEND:-benchmarks/RESULTS.md}
  LIMIT_ARGS=(--min-share 0.8 ${PUBLISHED_GB_S:+--published-gb-s "$PUBLISHED_GB_S"})
fi
[ -x "$PY" ] || command -v "$PY" >/dev/null || { echo "no Python at $PY: run make setup, or set PYTHON" >&2; exit 2; }
mkdir -p "$OUT"
step() { echo "== [$SECONDS s] $*"; }
fail() { echo "GPU CHECK FAILED at: $* (outputs in $OUT)" >&2; exit 1; }

step "bandwidth on $DEVICE"
"$PY" -m sizebench.measurement.bandwidth --device "$DEVICE" "${LIMIT_ARGS[@]}" > "$OUT/bandwidth.json" \
  || fail "bandwidth: $(cat "$OUT/bandwidth.json" 2>/dev/null) (see above)"
cat "$OUT/bandwidth.json"

step "GPU-marked tests"
"$PY" -m pytest -q -m gpu tests/test_gpu.py || fail "the GPU-marked tests"

# the first PROMPTS questions of the geography suite
grep -v '^#' prompts/geography.txt | grep -v '^[[:space:]]*$' | head -n "$PROMPTS" > "$OUT/prompts.txt"
for mode in static eager; do
  step "bench, --decode $mode: $MODELS"
  "$PY" -m sizebench bench --models "$MODELS" "${WEIGHTS[@]}" --device "$DEVICE" --dtype "$DTYPE" --decode "$mode" \
    --prompts "$OUT/prompts.txt" --max-new-tokens "$NEW" --batch-size "$BATCH" --limit "$LIMIT" \
    --results "$OUT/$mode" || fail "sizebench bench --decode $mode"
done

step "plain-transformers anchors ($SHAPE shape)"
"$PY" benchmarks/anchors.py --shape "$SHAPE" --device "$DEVICE" --dtype "$DTYPE" > "$OUT/anchors.json" \
  || fail "benchmarks/anchors.py"

step "table -> $APPEND"
"$PY" benchmarks/gpu_table.py --static "$OUT/static" --eager "$OUT/eager" --bandwidth "$OUT/bandwidth.json" \
  --anchors "$OUT/anchors.json" --append "$APPEND" || fail "benchmarks/gpu_table.py"

step "done"
if [ "$SECONDS" -gt "$BUDGET_S" ]; then
  echo "NOTE: the check took ${SECONDS} s, over its ${BUDGET_S} s budget" >&2
fi

#!/usr/bin/env bash
# SSL training-step throughput, Tessera vs PyTorch eager on the same device: runs
# examples/bench_steps.rs and scripts/bench_steps.py alternately for each model x dtype with
# the same batch, shapes, optimizer and step counts, and prints a markdown table.
#
#   scripts/bench_steps.sh                                   # on a GPU (H200: ~3 minutes)
#   TESSERA_BIN=gpu-bundle/bench_steps scripts/bench_steps.sh        # prebuilt binary
#   DEVICE=cpu BATCH=4 STEPS=2 WARMUP=1 \
#     EXTRA_ARGS="--tiny --img-size 32 --local-size 16 --local-crops 2" scripts/bench_steps.sh
#
# Environment:
#   MODELS      "dino_vit_s16 byol_resnet50"
#   DTYPES      "f32 bf16"  (Tessera bf16: pure bf16 weights; PyTorch bf16: autocast)
#   BATCH (64), STEPS (10), WARMUP (2)
#   DEVICE      cuda | cuda:N | cuda-sim | cpu (default cuda); PyTorch runs on cuda[:N], or on
#               the CPU for cpu and cuda-sim
#   TIME_LIMIT  seconds of stepping after which each run stops early with the timed steps it
#               has (at least one): --time-limit of both programs (default 12; 0 = none)
#   TIMEOUT     hard wall-clock limit of each run, start-up included (default 45 s; `timeout`)
#   TESSERA_BIN the Tessera binary; default gpu-bundle/bench_steps if it exists and DEVICE is
#               a GPU, else built here with cargo (features from DEVICE) into
#               ${CARGO_TARGET_DIR:-target}/release/examples/bench_steps
#   PYTHON      default /opt/torchenv/bin/python if it exists, else python3
#   EXTRA_ARGS  flags for both programs (e.g. --tiny --img-size 32 --local-size 16)
#   TORCH_ARGS  flags for the PyTorch side only (e.g. --tf32 off, --cudnn-benchmark)
#   LOG_DIR     where each run's full output is kept (default: a fresh /tmp directory)
# Exit status: 0 when every run produced a RESULT line, 1 otherwise (the table is printed
# either way, with the failure in place of the numbers).
set -uo pipefail
cd "$(dirname "$0")/.."

MODELS=${MODELS:-"dino_vit_s16 byol_resnet50"}
DTYPES=${DTYPES:-"f32 bf16"}
BATCH=${BATCH:-64}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-2}
DEVICE=${DEVICE:-cuda}
TIME_LIMIT=${TIME_LIMIT:-12}
TIMEOUT=${TIMEOUT:-45}
EXTRA_ARGS=${EXTRA_ARGS:-}
TORCH_ARGS=${TORCH_ARGS:-}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x /opt/torchenv/bin/python ]]; then PYTHON=/opt/torchenv/bin/python; else PYTHON=python3; fi
fi
LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/bench_steps.XXXXXX)}
mkdir -p "$LOG_DIR"

case "$DEVICE" in
  cuda | cuda:*) features=(--features cuda); torch_device=$DEVICE ;;
  cuda-sim) features=(--features cuda-sim); torch_device=cpu ;;
  cpu) features=(); torch_device=cpu ;;
  *) echo "bench_steps.sh: DEVICE must be cuda, cuda:N, cuda-sim or cpu, got $DEVICE" >&2; exit 2 ;;
esac
if [[ -z "${TESSERA_BIN:-}" ]]; then
  if [[ "$DEVICE" == cuda* && "$DEVICE" != cuda-sim && -x gpu-bundle/bench_steps ]]; then
    TESSERA_BIN=gpu-bundle/bench_steps
  else
    echo "building examples/bench_steps.rs (release ${features[*]})..." >&2
    cargo build -q --release "${features[@]}" --example bench_steps || exit 1
    TESSERA_BIN="${CARGO_TARGET_DIR:-target}/release/examples/bench_steps"
  fi
fi

# shellcheck disable=SC2206  # EXTRA_ARGS / TORCH_ARGS are word lists on purpose
COMMON=(--batch "$BATCH" --steps "$STEPS" --warmup "$WARMUP" --time-limit "$TIME_LIMIT" $EXTRA_ARGS)
# shellcheck disable=SC2206
TORCH_EXTRA=($TORCH_ARGS)

# Field `key=value` of the RESULT line in a log (empty if none).
field() { grep '^RESULT ' "$1" 2>/dev/null | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# run LOG CMD...: runs under the timeout, output to LOG and stderr; records the status.
declare -A STATUS
run() {
  local log=$1; shift
  echo "+ $*" >&2
  timeout --kill-after=5 "$TIMEOUT" "$@" 2>&1 | tee "$log" >&2
  local rc=${PIPESTATUS[0]}
  case $rc in
    0) STATUS[$log]=ok ;;
    124 | 137) STATUS[$log]="timeout ${TIMEOUT}s" ;;
    *) STATUS[$log]="exit $rc" ;;
  esac
  if [[ $rc -eq 0 && -z "$(field "$log" img_per_s)" ]]; then STATUS[$log]="no RESULT"; fi
}

GPU=""
if [[ "$torch_device" == cuda* ]] && command -v nvidia-smi > /dev/null; then
  GPU=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
fi
START=$(date -u +%FT%TZ)
t0=$SECONDS
for m in $MODELS; do
  for d in $DTYPES; do
    run "$LOG_DIR/tessera_${m}_$d.log" "$TESSERA_BIN" --device "$DEVICE" --model "$m" \
      --dtype "$d" "${COMMON[@]}"
    run "$LOG_DIR/torch_${m}_$d.log" "$PYTHON" scripts/bench_steps.py --device "$torch_device" \
      --model "$m" --dtype "$d" "${COMMON[@]}" "${TORCH_EXTRA[@]}"
  done
done
END=$(date -u +%FT%TZ)

# A cell: the field, or the run's failure.
cell() {
  local v
  v=$(field "$1" "$2")
  if [[ -n "$v" ]]; then echo "$v"; else echo "(${STATUS[$1]:-missing})"; fi
}

echo
echo "bench_steps: Tessera (--device $DEVICE) vs PyTorch eager (--device $torch_device${GPU:+, $GPU})," \
  "batch $BATCH, median of up to $STEPS steps after $WARMUP warm-up (time limit ${TIME_LIMIT}s," \
  "timeout ${TIMEOUT}s per run)${EXTRA_ARGS:+, args: $EXTRA_ARGS}${TORCH_ARGS:+, torch args: $TORCH_ARGS};" \
  "$START – $END ($((SECONDS - t0)) s); logs in $LOG_DIR."
echo "img/s counts images (batch samples), not crops. bf16: Tessera pure bf16 weights and" \
  "optimizer state; PyTorch torch.autocast(bfloat16) with f32 master weights. Peak: Tessera's" \
  "caching allocator peak in-use bytes; PyTorch torch.cuda.max_memory_allocated."
echo
echo "| model | dtype | Tessera img/s | PyTorch img/s | Tessera / PyTorch | Tessera step ms | PyTorch step ms | Tessera peak MiB | PyTorch peak MiB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
fail=0
for m in $MODELS; do
  for d in $DTYPES; do
    t="$LOG_DIR/tessera_${m}_$d.log"
    p="$LOG_DIR/torch_${m}_$d.log"
    ti=$(field "$t" img_per_s)
    pi=$(field "$p" img_per_s)
    if [[ -n "$ti" && -n "$pi" ]]; then
      ratio=$(awk -v a="$ti" -v b="$pi" 'BEGIN { printf "%.3f", a / b }')
    else
      ratio="—"
    fi
    [[ -n "$ti" && -n "$pi" ]] || fail=1
    echo "| $m | $d | $(cell "$t" img_per_s) | $(cell "$p" img_per_s) | $ratio |" \
      "$(cell "$t" step_ms) | $(cell "$p" step_ms) | $(cell "$t" peak_mb) | $(cell "$p" peak_mb) |"
  done
done
exit $fail

#!/usr/bin/env bash
# Whole-model training throughput, Tessera vs PyTorch CPU, in one invocation: builds
# nn/examples/bench_models.rs (release), runs it and scripts/bench_models.py for ViT-S/16 and
# ResNet-50 with the same batch, size, steps and thread count, and prints a markdown table.
#
#   scripts/bench_models.sh                          # defaults below
#   THREADS=2 STEPS=3 WARMUP=1 MODELS="vit_s16" scripts/bench_models.sh
#   PROFILE=1 scripts/bench_models.sh                # adds Tessera's per-op profile to the logs
#
# Environment: MODELS ("vit_s16 resnet50"), BATCH (8), SIZE (224), STEPS (3), WARMUP (1),
# THREADS (2), PYTHON (/opt/torchenv/bin/python), LOG_DIR (a fresh /tmp directory; each
# run's full output is kept there), CARGO_TARGET_DIR (cargo's default if unset).
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=${MODELS:-"vit_s16 resnet50"}
BATCH=${BATCH:-8}
SIZE=${SIZE:-224}
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-/opt/torchenv/bin/python}
LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/bench_models.XXXXXX)}
PROFILE_FLAG=()
if [[ -n "${PROFILE:-}" ]]; then PROFILE_FLAG=(--profile); fi
mkdir -p "$LOG_DIR"

echo "building the Rust benchmark (release)..." >&2
cargo build -q -p tessera-nn --release --example bench_models
BIN="${CARGO_TARGET_DIR:-target}/release/examples/bench_models"

ARGS=(--batch "$BATCH" --size "$SIZE" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS")
# Both sides get the same thread count: matrixmultiply (set by the binary as well) and
# PyTorch's intra-op pool (torch.set_num_threads in the script; OMP/MKL variables to match).
export MATMUL_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

# Field `key=value` of the RESULT line in a log.
field() { grep '^RESULT ' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

START=$(date -u +%FT%TZ)
LOAD_BEFORE=$(uptime | sed 's/.*load average: //')
for m in $MODELS; do
  echo "tessera $m ..." >&2
  "$BIN" --model "$m" "${ARGS[@]}" "${PROFILE_FLAG[@]}" | tee "$LOG_DIR/tessera_$m.log" >&2
  echo "pytorch $m ..." >&2
  "$PYTHON" scripts/bench_models.py --model "$m" "${ARGS[@]}" | tee "$LOG_DIR/torch_$m.log" >&2
done
LOAD_AFTER=$(uptime | sed 's/.*load average: //')
END=$(date -u +%FT%TZ)

echo
echo "Batch $BATCH, ${SIZE}x${SIZE}, f32, $THREADS threads, median of $STEPS steps after" \
  "$WARMUP warm-up; $START – $END; load average before: $LOAD_BEFORE; after: $LOAD_AFTER;" \
  "logs in $LOG_DIR"
echo
echo "| model | Tessera img/s | PyTorch img/s | Tessera / PyTorch | Tessera CPU s/step | PyTorch CPU s/step | Tessera peak mem | PyTorch peak mem |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for m in $MODELS; do
  t="$LOG_DIR/tessera_$m.log"
  p="$LOG_DIR/torch_$m.log"
  ti=$(field "$t" images_per_s)
  pi=$(field "$p" images_per_s)
  ratio=$(awk -v a="$ti" -v b="$pi" 'BEGIN { printf "%.3f", a / b }')
  printf '| %s | %.3f | %.3f | %s | %s | %s | %s | %s |\n' "$m" "$ti" "$pi" "$ratio" \
    "$(field "$t" cpu_step_s)" "$(field "$p" cpu_step_s)" \
    "$(field "$t" peak_mem | sed 's/MiB/ MiB/')" "$(field "$p" peak_mem | sed 's/MiB/ MiB/')"
done

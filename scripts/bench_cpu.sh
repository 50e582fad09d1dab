#!/usr/bin/env bash
# The CPU speed benchmark of issue 14: Tessera against PyTorch eager on the same CPU, same
# threads, models, batches and inputs, run alternately (Tessera, PyTorch, Tessera, PyTorch, ...)
# so that both see the same machine load. Five rows:
#
#   dino_default   the main job's default DINO step (examples/bench_steps.rs --model
#                  dino_default): ViT 192x6 patch 7, head 2048-2048-256 -> 2048, batch 128,
#                  2 x 28 px crops per image, no local crops (as the recipe)
#   vit_s16_train  a ViT-S/16 training step at 224 px, batch 8 (nn/examples/bench_models.rs)
#   dino_vit_s16   a DINO ViT-S/16 step, 2 x 224 + 10 x 96 px crops, batch 8 (bench_steps)
#   byol_resnet50  a BYOL ResNet-50 step, 2 views of 224 px, batch 8 (bench_steps)
#   byol_small     byol_resnet50's default step: ResNet-18 layout at width 16, CIFAR stem,
#                  2 x 28 px 1-channel views, batch 128, SGD (not one of issue 14's rows)
#
# For each row it prints the best img/s of each side over REPEATS alternating runs (each run's
# figure is already the median of its timed steps), their ratio, and each side's peak resident
# memory (VmHWM / ru_maxrss: the whole process). The CPU model, its vector features and the
# load average before and after go in the header: compare ratios, not times, and rerun when the
# load average was high.
#
#   scripts/bench_cpu.sh                                     # all rows, ~10 minutes on 2 cores
#   ROWS="dino_default" REPEATS=3 scripts/bench_cpu.sh
#   PRECISION=bf16 scripts/bench_cpu.sh   # Tessera --precision bf16, PyTorch autocast, and
#                                         # Tessera f32 in the same rounds (bf16 / own f32)
#
# Environment: ROWS (the five above), REPEATS (2), THREADS (2), STEPS (5), WARMUP (1),
# PRECISION (f32 | bf16; bf16 = bf16 GEMM inputs with f32 accumulation and f32 weights on
# Tessera's side, torch.autocast(bfloat16) on PyTorch's, in every row), PYTHON (/opt/torchenv/bin/python if present, else python3), LOG_DIR (a fresh /tmp
# directory), CARGO_TARGET_DIR (cargo's default if unset).
# Exit status 0 when every run printed its RESULT line.
set -uo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-"dino_default vit_s16_train dino_vit_s16 byol_resnet50 byol_small"}
REPEATS=${REPEATS:-2}
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-1}
PRECISION=${PRECISION:-f32}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x /opt/torchenv/bin/python ]]; then PYTHON=/opt/torchenv/bin/python; else PYTHON=python3; fi
fi
LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/bench_cpu.XXXXXX)}
mkdir -p "$LOG_DIR"
case "$PRECISION" in
  f32 | bf16) ;;
  *) echo "bench_cpu.sh: PRECISION must be f32 or bf16, got $PRECISION" >&2; exit 2 ;;
esac

echo "building the Rust benchmarks (release)..." >&2
cargo build -q --release --example bench_steps || exit 1
cargo build -q -p tessera-nn --release --example bench_models || exit 1
TARGET=${CARGO_TARGET_DIR:-target}
STEPS_BIN="$TARGET/release/examples/bench_steps"
MODELS_BIN="$TARGET/release/examples/bench_models"

# The same thread count everywhere: Tessera's kernels, matrixmultiply, PyTorch's intra-op pool.
export TESSERA_NUM_THREADS=$THREADS MATMUL_NUM_THREADS=$THREADS
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

# tessera_cmd ROW [PRECISION]: Tessera's command for a row (as words), in $PRECISION unless
# given; torch_cmd ROW: PyTorch's.
tessera_cmd() {
  local precision=${2:-$PRECISION}
  case $1 in
    vit_s16_train)
      echo "$MODELS_BIN --model vit_s16 --batch 8 --size 224 --steps $STEPS --warmup $WARMUP --threads $THREADS --precision $precision" ;;
    dino_default | byol_small)
      echo "$STEPS_BIN --device cpu --model $1 --steps $STEPS --warmup $WARMUP --precision $precision" ;;
    *)
      echo "$STEPS_BIN --device cpu --model $1 --batch 8 --steps $STEPS --warmup $WARMUP --precision $precision" ;;
  esac
}
torch_cmd() {
  case $1 in
    vit_s16_train)
      echo "$PYTHON scripts/bench_models.py --model vit_s16 --batch 8 --size 224 --steps $STEPS --warmup $WARMUP --threads $THREADS --precision $PRECISION" ;;
    dino_default | byol_small)
      echo "$PYTHON scripts/bench_steps.py --device cpu --model $1 --steps $STEPS --warmup $WARMUP --threads $THREADS --dtype $PRECISION" ;;
    *)
      echo "$PYTHON scripts/bench_steps.py --device cpu --model $1 --batch 8 --steps $STEPS --warmup $WARMUP --threads $THREADS --dtype $PRECISION" ;;
  esac
}

# field LOG KEY: `key=value` of a log's RESULT line (bench_models writes images_per_s and
# peak_mem=123MiB; bench_steps img_per_s and peak_mb=123).
field() { grep '^RESULT ' "$1" 2>/dev/null | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ips() { local v; v=$(field "$1" img_per_s); [[ -n "$v" ]] || v=$(field "$1" images_per_s); echo "$v"; }
peak() { local v; v=$(field "$1" peak_mb); [[ -n "$v" ]] || v=$(field "$1" peak_mem | sed 's/MiB//'); echo "$v"; }

fail=0
run() {
  local log=$1; shift
  echo "+ $*" >&2
  # shellcheck disable=SC2068  # the command is a word list on purpose
  $@ > "$log" 2>&1
  local rc=$?
  tail -2 "$log" >&2
  if [[ $rc -ne 0 || -z "$(ips "$log")" ]]; then echo "  (failed: exit $rc, log $log)" >&2; fail=1; fi
}

CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
FEATURES=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|amx_tile|amx_bf16)$' | tr '\n' ' ')
LOAD_BEFORE=$(sed 's/ [0-9]*\/.*//' /proc/loadavg)
START=$(date -u +%FT%TZ)
for row in $ROWS; do
  for r in $(seq 1 "$REPEATS"); do
    run "$LOG_DIR/tessera_${row}_$r.log" $(tessera_cmd "$row")
    # bf16: Tessera's own f32 in the same round, for the bf16 / f32 speed-up.
    if [[ $PRECISION == bf16 ]]; then run "$LOG_DIR/tessera32_${row}_$r.log" $(tessera_cmd "$row" f32); fi
    run "$LOG_DIR/torch_${row}_$r.log" $(torch_cmd "$row")
  done
done
END=$(date -u +%FT%TZ)
LOAD_AFTER=$(sed 's/ [0-9]*\/.*//' /proc/loadavg)

# best SIDE ROW: the highest img/s over the repeats, with that run's peak memory.
best() {
  local best_v="" best_p="" v
  for r in $(seq 1 "$REPEATS"); do
    v=$(ips "$LOG_DIR/${1}_${2}_$r.log")
    [[ -n "$v" ]] || continue
    if [[ -z "$best_v" ]] || awk -v a="$v" -v b="$best_v" 'BEGIN { exit !(a > b) }'; then
      best_v=$v
      best_p=$(peak "$LOG_DIR/${1}_${2}_$r.log")
    fi
  done
  echo "${best_v:-failed} ${best_p:-na}"
}

echo
echo "bench_cpu: $CPU ($FEATURES), $THREADS threads, precision $PRECISION, best of $REPEATS" \
  "alternating runs (each the median of $STEPS steps after $WARMUP warm-up); $START – $END;" \
  "load average before $LOAD_BEFORE, after $LOAD_AFTER; torch $($PYTHON -c 'import torch; print(torch.__version__)' 2>/dev/null); logs in $LOG_DIR"
echo
if [[ $PRECISION == bf16 ]]; then
  echo "| row | Tessera img/s | PyTorch img/s | Tessera / PyTorch | Tessera peak MiB | PyTorch peak MiB | Tessera / PyTorch memory | Tessera f32 img/s | Tessera bf16 / own f32 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
else
  echo "| row | Tessera img/s | PyTorch img/s | Tessera / PyTorch | Tessera peak MiB | PyTorch peak MiB | Tessera / PyTorch memory |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
fi
for row in $ROWS; do
  read -r ti tp <<< "$(best tessera "$row")"
  read -r pi pp <<< "$(best torch "$row")"
  ratio=$(awk -v a="$ti" -v b="$pi" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "**%.2f**", a / b; else print "—" }')
  mem=$(awk -v a="$tp" -v b="$pp" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "—" }')
  if [[ $PRECISION == bf16 ]]; then
    read -r fv _ <<< "$(best tessera32 "$row")"
    own=$(awk -v a="$ti" -v b="$fv" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "**%.2f**", a / b; else print "—" }')
    echo "| $row | $ti | $pi | $ratio | $tp | $pp | $mem | $fv | $own |"
  else
    echo "| $row | $ti | $pi | $ratio | $tp | $pp | $mem |"
  fi
done
exit $fail

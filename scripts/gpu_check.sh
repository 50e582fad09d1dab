#!/usr/bin/env bash
# gpu_check.sh: runs ON the GPU machine, from the repo root, over gpu-bundle/ built here by
# scripts/gpu_build.sh (no Rust toolchain needed there; a carried gpu-bundle.tar.xz is unpacked
# first). In order, each part under a timeout:
#   1. GPU / driver / libcuda report (adds /usr/local/nvidia/lib64 when libcuda.so.1 is not
#      found by default; refuses to run against the CI libcuda stub);
#   2. every test binary in the bundle with REQUIRE_GPU=1 (GPU tests fail instead of skipping),
#      each from its package folder, like `cargo test`;
#   3. scripts/bench_steps.sh over gpu-bundle/bench_steps (Tessera vs PyTorch eager);
#   4. examples/dino_vit_s --device cuda for ~2 minutes (SIGINT at the limit, so the example
#      can stop cleanly);
#   5. a summary table, last.
# The whole run stays under 7 minutes (DEADLINE_S, default 400 s). Full logs go to
# $OUT/gpu_check/ (the device tool brings $OUT back), else gpu-bundle/logs/.
#
# Env: BUNDLE (gpu-bundle), DEADLINE_S (400), TEST_TIMEOUT_S (150 per binary),
#      TESTS_BUDGET_S (200 for all tests), BENCH_TIMEOUT_S (60), DINO_S (120),
#      DINO_ARGS (default "--device cuda"; or a file gpu-bundle/examples/dino_vit_s.args),
#      TEST_ARGS (extra args for every test binary, e.g. a name filter);
#      BENCH_BATCH (64), BENCH_STEPS (10), BENCH_WARMUP (2), BENCH_TIME_LIMIT (10 s of stepping
#      per run), BENCH_TIMEOUT_S_ALL (200 for the whole benchmark); MODELS and DTYPES pass
#      through to bench_steps.sh.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
BUNDLE=${BUNDLE:-gpu-bundle}
DEADLINE_S=${DEADLINE_S:-400}
TEST_TIMEOUT_S=${TEST_TIMEOUT_S:-150}
TESTS_BUDGET_S=${TESTS_BUDGET_S:-200}
BENCH_TIMEOUT_S=${BENCH_TIMEOUT_S:-60}
DINO_S=${DINO_S:-120}
LOGS=${OUT:+$OUT/gpu_check}
LOGS=${LOGS:-$REPO/$BUNDLE/logs}
mkdir -p "$LOGS"
START=$SECONDS
declare -a SUMMARY=()
FAILED=0

left() { echo $((DEADLINE_S - (SECONDS - START))); }
# timeout for a part: min(want, time left before the deadline - 10 s reserve)
budget() { local l=$(( $(left) - 10 )); [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
record() { SUMMARY+=("$(printf '%-42s %-8s %5ss  %s' "$1" "$2" "$3" "$4")"); }

if [ ! -f "$BUNDLE/manifest.tsv" ] && [ -f "$BUNDLE.tar.xz" ]; then
  echo "gpu_check: unpacking $BUNDLE.tar.xz"
  tar xJf "$BUNDLE.tar.xz"
fi
if [ ! -f "$BUNDLE/manifest.tsv" ]; then
  echo "gpu_check: no $BUNDLE/manifest.tsv; build it here first with scripts/gpu_build.sh and carry $BUNDLE" >&2
  exit 2
fi

echo "== GPU / driver"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,memory.used --format=csv,noheader \
  || echo "nvidia-smi failed"
echo "== libcuda"
# a binary that links libcuda (not every test binary does)
first=""
while IFS=$'\t' read -r _ path _; do
  if readelf -d "$BUNDLE/$path" 2>/dev/null | grep -q 'libcuda\.so\.1'; then first=$path; break; fi
done < "$BUNDLE/manifest.tsv"
resolved() { ldd "$BUNDLE/$first" 2>/dev/null | awk '/libcuda\.so\.1/{print ($3 == "not" ? "" : $3)}'; }
if [ -n "$first" ] && [ -z "$(resolved)" ]; then
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
    if [ -e "$d/libcuda.so.1" ]; then
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      echo "libcuda.so.1 not found by default; using $d"
      break
    fi
  done
fi
lib=$(resolved)
echo "libcuda.so.1 => ${lib:-NOT FOUND}   (LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-})"
if [ -n "$lib" ] && [ -e "$lib" ] && grep -q 'libcuda stub' "$lib"; then
  echo "gpu_check: $lib is the CI stub (no device); remove it from LD_LIBRARY_PATH" >&2
  exit 2
fi
[ -n "$lib" ] || [ -z "$first" ] || echo "gpu_check: libcuda.so.1 not found; the binaries will not start" >&2

export REQUIRE_GPU=1 RUST_BACKTRACE=1
[ -n "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" ] \
  && record "gpu" ok 0 "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)" \
  || record "gpu" "?" 0 "nvidia-smi gave nothing"

# run_part <label> <seconds> <log> <dir> <signal> <cmd...>: runs under timeout, keeps the log
run_part() {
  local label=$1 secs=$2 log=$3 dir=$4 sig=$5; shift 5
  if [ "$secs" -le 5 ]; then
    record "$label" skipped 0 "no time left before the ${DEADLINE_S} s deadline"; return 99
  fi
  local t=$SECONDS rc
  (cd "$dir" && timeout -s "$sig" -k 15 "$secs" "$@") > "$log" 2>&1
  rc=$?
  PART_SECS=$((SECONDS - t))
  return $rc
}

echo "== tests (REQUIRE_GPU=1)"
tests_end=$((SECONDS + TESTS_BUDGET_S))
while IFS=$'\t' read -r kind path dir; do
  [ "$kind" = test ] || continue
  name=${path#tests/}
  want=$(( tests_end - SECONDS < TEST_TIMEOUT_S ? tests_end - SECONDS : TEST_TIMEOUT_S ))
  log="$LOGS/test_$name.log"
  # shellcheck disable=SC2086
  run_part "test $name" "$(budget "$want")" "$log" "$REPO/${dir:-.}" TERM "$REPO/$BUNDLE/$path" ${TEST_ARGS:-}
  rc=$?
  [ $rc -eq 99 ] && continue
  res=$(grep -E '^test result:' "$log" | tail -1 | sed -E 's/^test result: //; s/; finished in.*//')
  if [ $rc -eq 0 ]; then
    echo "-- $name: ok ($res) in ${PART_SECS}s"
    record "test $name" ok "$PART_SECS" "$res"
  else
    FAILED=1
    why=$([ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "timed out" || echo "exit $rc")
    echo "-- $name: FAILED ($why) in ${PART_SECS}s; log tail:"
    grep -E "^(---- |thread '.*' panicked|failures:|    [a-z_:]+$)" "$log" | head -40
    tail -25 "$log"
    record "test $name" FAIL "$PART_SECS" "$why; ${res:-no result line}"
  fi
done < "$BUNDLE/manifest.tsv"

echo "== benchmark: Tessera vs PyTorch eager, whole DINO/BYOL steps (scripts/bench_steps.sh)"
# ViT-S/16 DINO (2x224 + 10x96 crops) and ResNet-50 BYOL, batch 64, fp32 and bf16; the table is
# also written to $LOGS/bench_steps.md for BENCHMARKS.md.
PY=${PYTHON:-python3}
if [ -x "$BUNDLE/bench_steps" ] && "$PY" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  run_part bench_steps "$(budget "${BENCH_TIMEOUT_S_ALL:-200}")" "$LOGS/bench_steps.md" "$REPO" TERM \
    env TESSERA_BIN="$REPO/$BUNDLE/bench_steps" PYTHON="$PY" DEVICE=cuda BATCH="${BENCH_BATCH:-64}" STEPS="${BENCH_STEPS:-10}" \
    WARMUP="${BENCH_WARMUP:-2}" TIME_LIMIT="${BENCH_TIME_LIMIT:-10}" TIMEOUT="${BENCH_TIMEOUT_S:-40}" LOG_DIR="$LOGS/bench_steps" bash "$REPO/scripts/bench_steps.sh"
  rc=$?
  cat "$LOGS/bench_steps.md"
  if [ $rc -eq 0 ]; then record bench_steps ok "$PART_SECS" "table in bench_steps.md"; else
    FAILED=1; record bench_steps FAIL "$PART_SECS" "exit $rc"; fi
else
  echo "(no $BUNDLE/bench_steps, or no PyTorch with CUDA in $PY)"
  record bench_steps none 0 "not run"
fi

echo "== examples/dino_vit_s --device cuda (~${DINO_S}s)"
dino="$BUNDLE/examples/dino_vit_s"
if [ -x "$dino" ]; then
  if [ -n "${DINO_ARGS:-}" ]; then args=$DINO_ARGS
  elif [ -f "$dino.args" ]; then args=$(cat "$dino.args")
  else args="--device cuda"; fi
  # shellcheck disable=SC2086
  run_part "dino_vit_s" "$(budget "$DINO_S")" "$LOGS/dino_vit_s.log" "$REPO" INT "$REPO/$dino" $args
  rc=$?
  if [ $rc -ne 99 ]; then
    tail -30 "$LOGS/dino_vit_s.log"
    # Stopped by the time limit (SIGINT, handled or not) is the expected end of a 2-minute run.
    case $rc in
      0) record "dino_vit_s $args" ok "$PART_SECS" "finished" ;;
      124|130) record "dino_vit_s $args" ok "$PART_SECS" "stopped at the time limit (exit $rc)" ;;
      *) FAILED=1; record "dino_vit_s $args" FAIL "$PART_SECS" "exit $rc" ;;
    esac
  fi
else
  echo "(not in the bundle)"; record "dino_vit_s" none 0 "no $dino"
fi

echo
echo "== summary ($((SECONDS - START)) s; logs in $LOGS)"
printf '%-42s %-8s %6s  %s\n' part status time detail
printf '%s\n' "${SUMMARY[@]}"
[ $FAILED -eq 0 ] && echo "gpu_check: OK" || echo "gpu_check: FAILURES above"
exit $FAILED

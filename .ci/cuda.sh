#!/usr/bin/env bash
# The CUDA backend's CI (called by .ci/run): everything that needs neither a GPU nor root.
#
#   1. toolchain: CUDA 13.0 nvcc/ptxas from NVIDIA's pinned, hash-checked PyPI wheels
#      (scripts/setup_cuda.sh; cached in .cuda/ between runs on one machine)
#   2. shim self-tests: the SIMT shim's own checks, plain and under AddressSanitizer
#   3. sim conformance: every kernel, run by the shim, through the conformance kit (op
#      families, property tests, f64 gradient checks, whole DINO/BYOL steps, every thread
#      order); prints the CONFORMANCE lines
#      and the main job (dino_vit_s --preset tiny) end to end on --device cuda-sim
#   4. sim under ASan: the op families and property tests again with the kernels and the
#      shim built with -fsanitize=address (out-of-bounds global/shared/stack accesses)
#   5. build with --features cuda: nvcc compiles every kernel to sm_80 and sm_90 SASS (ptxas
#      validates each) plus compute_80 PTX; the committed ptxas resource table must be current
#   6. GPU tests without a GPU: the `cuda` test binaries run against the libcuda stub and
#      print SKIP lines, which are counted
#   7. clippy -D warnings with each feature
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

declare -a STEPS=()
step_start() { printf '\n\033[1m---- cuda: %s\033[0m\n' "$*"; STEP_NAME="$*"; STEP_T0=$SECONDS; }
step_done() { STEPS+=("$(printf '%5ds  cuda: %s' $((SECONDS - STEP_T0)) "$STEP_NAME")"); }

step_start "toolchain (scripts/setup_cuda.sh)"
# The wheels come through pip; the shim needs a C++17 compiler. Install what is missing.
missing=()
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bash scripts/setup_cuda.sh
# shellcheck disable=SC1091
source .cuda/cuda-env.sh
nvcc --version | tail -1
step_done

step_start "SIMT shim self-tests (plain and ASan)"
bash cuda/sim/tests/run.sh
step_done

LOG=$(mktemp)
step_start "sim conformance: cargo test -p tessera-cuda --features sim"
cargo test -p tessera-cuda --features sim -- --nocapture 2>&1 | tee "$LOG" | grep -E '^(test |CONFORMANCE|running|test result)' || true
if grep -q 'test result: FAILED' "$LOG" || ! grep -q 'test result: ok' "$LOG"; then
    grep -E 'panicked|failure|FAILED' "$LOG" | head -50
    echo "sim conformance failed (full log: $LOG)"; exit 1
fi
grep -E '^CONFORMANCE' "$LOG" | sort > "$LOG.conf"
step_done

step_start "the main job through the CUDA kernels on the shim: dino_vit_s --device cuda-sim --preset tiny"
RUN_DIR=$(mktemp -d)
cargo run --features cuda-sim --example dino_vit_s -- --device cuda-sim --preset tiny \
    --output-dir "$RUN_DIR" 2>&1 | grep -vE '^\s*(Compiling|Finished|Running)' | tail -12
test -s "$RUN_DIR/checkpoint.safetensors"
step_done

step_start "sim under AddressSanitizer: op families and property tests"
ASAN_LIB=$(gcc -print-file-name=libasan.so)
export TESSERA_SIM_ASAN=1
# A target dir of its own, so that the plain build above is not rebuilt back and forth.
ASAN_TARGET=${CARGO_TARGET_DIR:-target}/asan
bins=$(CARGO_TARGET_DIR=$ASAN_TARGET cargo test -p tessera-cuda --features sim --test sim_conformance \
    --no-run --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "sim_conformance":
        print(m["executable"])')
unset TESSERA_SIM_ASAN
for b in $bins; do
    (cd cuda && LD_PRELOAD="$ASAN_LIB" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        "$b" op_families_on_sim properties_on_sim --test-threads=1)
done
step_done

step_start "build with --features cuda (nvcc: sm_80 + sm_90 SASS via ptxas, compute_80 PTX)"
cargo build -p tessera-cuda --features cuda --all-targets
cargo build --features cuda --examples
bash scripts/cuda_resources.sh --check
step_done

step_start "GPU tests without a GPU (libcuda stub: each test prints SKIP)"
LD_LIBRARY_PATH="$CUDA_STUB_RUNTIME_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    cargo test -p tessera-cuda --features cuda -- --nocapture 2>&1 | tee "$LOG.gpu" | grep -E '^(test |SKIP|test result)' || true
if grep -q 'test result: FAILED' "$LOG.gpu"; then echo "GPU tests failed without a GPU"; exit 1; fi
SKIPS=$(grep -c '^SKIP gpu:' "$LOG.gpu" || true)
# The example's message on a machine without a GPU (the stub answers cuInit with NO_DEVICE).
msg=$(LD_LIBRARY_PATH="$CUDA_STUB_RUNTIME_DIR" cargo run -q --features cuda --example dino_vit_s -- \
    --device cuda --output-dir "$(mktemp -d)" 2>&1 || true)
echo "dino_vit_s --device cuda without a GPU: $msg"
grep -q 'no CUDA device found' <<< "$msg"
step_done

step_start "clippy -D warnings (features sim, cuda)"
cargo clippy -p tessera-cuda --features sim --all-targets -- -D warnings
cargo clippy -p tessera-cuda --features cuda --all-targets -- -D warnings
cargo clippy --features cuda,cuda-sim --all-targets -- -D warnings
step_done

printf '\n\033[1m==== cuda summary ====\033[0m\n'
cat "$LOG.conf"
echo "GPU tests skipped without a device: $SKIPS (SKIP lines)"
printf '%s\n' "${STEPS[@]}"

#!/usr/bin/env bash
# Runs the tests that exercise tessera-tensor's unsafe code (GEMM through raw pointers, the
# strided kernels) under valgrind's memcheck, so that an invalid read or write fails CI even
# where it happens not to crash. Run from anywhere inside a clone: `bash .ci/memcheck.sh`.
#
# Binaries: `soundness` (adversarial layouts, shapes, indices and parameters fed to the Cpu
# backend directly), `views_proptest` (every op on random views) and the crate's unit tests
# (among them the CPU buffer cache, which rebuilds vectors from raw blocks, and the in-place
# and fused update kernels). Release builds, because
# that is where unchecked arithmetic used to wrap instead of panic, and because valgrind slows
# a debug build too much. PROPTEST_CASES defaults to 64: under valgrind both binaries then run
# in about 5 s on a 2-core dev machine (the release build before it takes ~2.5 min cold).
#
# Leaks are not checked (`--leak-check=no`): the test harness's threads and proptest's
# statics are still alive at exit. Any invalid access, use of uninitialized memory or bad
# free makes valgrind exit with status 1 (`--error-exitcode=1`), which fails this script.
#
# Miri would additionally catch pointer-arithmetic UB that never touches memory, but it needs
# a nightly toolchain (`cargo +nightly miri test -p tessera-tensor --test soundness`), which CI
# machines do not have; valgrind is always there, so this script needs only stable Rust.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-64}"
# One thread: valgrind serializes threads anyway, and the kernels' results do not depend on
# the thread count (see tessera-tensor's crate docs).
export TESSERA_NUM_THREADS=1 MATMUL_NUM_THREADS=1
# Do not save failing cases into the source tree from CI.
export PROPTEST_DISABLE_FAILURE_PERSISTENCE=1

if ! command -v valgrind >/dev/null; then
    echo "memcheck: installing valgrind"
    apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi

start=$SECONDS
tests=(soundness views_proptest)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done

# Build once and ask cargo where the test executables are.
json=$(cargo test -p tessera-tensor --release --no-run --message-format=json --lib "${args[@]}")
status=0
for t in tessera_tensor "${tests[@]}"; do
    # One JSON object per line; the test target's artifact line carries its executable.
    exe=$(printf '%s\n' "$json" | grep -F '"reason":"compiler-artifact"' |
        grep -F "\"name\":\"$t\"" | grep -F '"test":true' |
        grep -o '"executable":"[^"]*"' | sed 's/^"executable":"//; s/"$//' | head -n 1)
    if [[ -z "$exe" ]]; then
        echo "memcheck: no executable found for test $t" >&2
        exit 1
    fi
    echo "==== valgrind: $t ($exe, PROPTEST_CASES=$PROPTEST_CASES)"
    # --test-threads=1: one test at a time keeps valgrind's output readable.
    if ! valgrind --error-exitcode=1 --errors-for-leak-kinds=none --leak-check=no \
        --quiet "$exe" --test-threads=1; then
        echo "memcheck: $t FAILED under valgrind" >&2
        status=1
    fi
done
echo "memcheck: done in $((SECONDS - start))s"
exit $status

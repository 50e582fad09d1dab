#!/usr/bin/env bash
# Builds the SIMT shim's self-tests with g++ (as build.rs builds the kernels) and runs them,
# once normally and once under AddressSanitizer. Prints PASS/FAIL per check; exits non-zero if
# any check fails. Usage: cuda/sim/tests/run.sh [build dir] (default: target/simt-tests)
set -u
here="$(cd "$(dirname "$0")" && pwd)"
cuda="$(cd "$here/../.." && pwd)"
out="${1:-$cuda/../target/simt-tests}"
mkdir -p "$out"
CXX="${CXX:-g++}"
FLAGS=(-std=c++17 -O2 -Wall -Wextra -Werror -DTS_SIM -I "$cuda/kernels" -I "$cuda/sim")
# -Wno-unknown-pragmas: `#pragma unroll` is nvcc's; g++ 12 cannot silence it from a header (GCC PR 53431).
KFLAGS=(-x c++ -include "$cuda/sim/simt.h" -Wno-unknown-pragmas)

build() {  # build <name> <extra flags...>
    local name="$1"; shift
    local dir="$out/$name"
    mkdir -p "$dir"
    "$CXX" "${FLAGS[@]}" "$@" -c "$cuda/sim/simt_runtime.cpp" -o "$dir/simt_runtime.o" || return 1
    for cu in "$here"/*.cu; do
        local src="$cu" stem
        stem="$(basename "$cu" .cu)"
        if [ "$name" = asan ]; then
            # g++ gives no redzones to statics of inline functions and templates (COMDAT); an
            # unnamed namespace around the kernel file makes them local, so ASan guards them.
            src="$dir/$stem.wrap.cpp"
            printf 'namespace {\n#include "%s"\n}\n' "$cu" > "$src"
        fi
        "$CXX" "${FLAGS[@]}" "$@" "${KFLAGS[@]}" -c "$src" -o "$dir/$stem.o" || return 1
    done
    "$CXX" "${FLAGS[@]}" "$@" -include "$cuda/sim/simt.h" -c "$here/test_main.cpp" -o "$dir/test_main.o" || return 1
    "$CXX" "$@" "$dir"/*.o -o "$dir/simt_tests" -pthread || return 1
}

status=0
for variant in plain asan; do
    echo "== SIMT shim self-tests ($variant build)"
    if [ "$variant" = asan ]; then
        extra=(-fsanitize=address -fno-omit-frame-pointer -g)
    else
        extra=()
    fi
    if ! build "$variant" "${extra[@]}"; then
        echo "FAIL build ($variant)"
        status=1
        continue
    fi
    # detect_leaks stays on: a leak in the shim is a failure too.
    if ! ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" "$out/$variant/simt_tests"; then
        status=1
    fi
done
[ $status -eq 0 ] && echo "ALL PASS" || echo "SOME CHECKS FAILED"
exit $status

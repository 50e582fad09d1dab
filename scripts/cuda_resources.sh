#!/usr/bin/env bash
# cuda_resources.sh: refreshes cuda/KERNEL_RESOURCES.md, the committed table of every kernel's
# registers, spills, shared memory and stack per SASS arch (ptxas -v through
# `nvcc --resource-usage`, written by cuda/build/nvcc.rs into $OUT_DIR/kernel_resources.md).
#
#   bash scripts/cuda_resources.sh           # rebuild the kernels, rewrite the table
#   bash scripts/cuda_resources.sh --check   # CI: fail (exit 1) when the committed table is stale
#
# Needs the CUDA 13.0 toolchain: sources $CUDA_ENV (default .cuda/cuda-env.sh), running
# scripts/setup_cuda.sh first when nvcc is not found. Runs `cargo check -p tessera-cuda
# --features cuda` (the build script compiles the kernels; nothing is linked).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
TABLE=cuda/KERNEL_RESOURCES.md
MODE=write
case "${1:-}" in
  --check) MODE=check ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! command -v nvcc >/dev/null 2>&1 && [ -z "${NVCC:-}" ] && [ ! -x "${CUDA_PATH:-/nonexistent}/bin/nvcc" ]; then
  CUDA_ENV=${CUDA_ENV:-$REPO/.cuda/cuda-env.sh}
  [ -f "$CUDA_ENV" ] || bash "$REPO/scripts/setup_cuda.sh" >&2
  # shellcheck disable=SC1090
  source "$CUDA_ENV"
fi

# The build script's out dir, from cargo's own report of the run.
json=$(cargo check -p tessera-cuda --features cuda --message-format=json)
out_dir=$(printf '%s\n' "$json" \
  | grep '"reason":"build-script-executed"' | grep -E '"package_id":"[^"]*(#|/)tessera-cuda[@#]' \
  | sed -E 's/.*"out_dir":"([^"]*)".*/\1/' | tail -1)
generated="$out_dir/kernel_resources.md"
if [ -z "$out_dir" ] || [ ! -f "$generated" ]; then
  echo "cuda_resources: no kernel_resources.md from the tessera-cuda build script (out dir: '${out_dir}')" >&2
  exit 1
fi

if [ "$MODE" = check ]; then
  if diff -u "$TABLE" "$generated"; then
    echo "cuda_resources: $TABLE is up to date ($(grep -c '^| [a-z]' "$generated" || true) rows)"
  else
    echo "cuda_resources: $TABLE is stale (diff above: - committed, + built)." >&2
    echo "Refresh it with: bash scripts/cuda_resources.sh, and commit the result." >&2
    exit 1
  fi
else
  if cmp -s "$TABLE" "$generated"; then
    echo "cuda_resources: $TABLE unchanged"
  else
    cp "$generated" "$TABLE"
    echo "cuda_resources: wrote $TABLE ($(grep -c '^| [a-z]' "$TABLE" || true) rows)"
  fi
fi

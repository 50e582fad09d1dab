#!/usr/bin/env bash
# gpu_build.sh: runs HERE (the CPU machine). Builds everything a GPU session runs into the
# git-ignored folder gpu-bundle/, which the device tool carries to the GPU machine, where
# scripts/gpu_check.sh runs it. No Rust toolchain is needed there.
#
#   bash scripts/gpu_build.sh
#   # then, on the device:  bash scripts/gpu_check.sh      (carry: ["gpu-bundle"])
#
# What goes in (data-driven; whatever exists is built):
#   gpu-bundle/tests/<package>__<target>   release test binaries of the workspace packages that
#                                          have a `cuda` feature, built with it, whose name
#                                          matches TESTS (default: the GPU tests and the CUDA
#                                          crate's unit tests; the CPU, CLI and shim tests run
#                                          in CI and would only fill the carry)
#   gpu-bundle/examples/<name>             EXAMPLES (default: dino_vit_s byol_resnet50), from the
#                                          package that defines them, with its `cuda` feature
#   gpu-bundle/bench_<name>                every bin/example target named bench* of those packages
#   gpu-bundle/manifest.tsv                kind, bundle path, package dir (the tests' cwd)
# Debug info is stripped when the bundle would exceed the carry limit (64 MiB); if it still
# does, it is packed as gpu-bundle.tar.xz (carry that instead; gpu_check.sh unpacks it). The libcuda
# stub is never included (the binaries record NEEDED libcuda.so.1 and bind to the real
# driver there).
#
# Env: CARGO_TARGET_DIR (honoured), EXAMPLES, TESTS (an extended regex over
#      <package>__<target>), CUDA_ENV (default .cuda/cuda-env.sh),
#      BUNDLE (default gpu-bundle), MAX_BUNDLE_MIB (default 64).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
BUNDLE=${BUNDLE:-gpu-bundle}
MAX_MIB=${MAX_BUNDLE_MIB:-64}
EXAMPLES=${EXAMPLES:-dino_vit_s byol_resnet50}
TESTS=${TESTS:-^tessera-cuda__(gpu_.*|tessera_cuda)$}
t0=$SECONDS

if [ -z "${NVCC:-}" ] && [ ! -x "${CUDA_PATH:-/nonexistent}/bin/nvcc" ] || [ -z "${CUDA_LIBRARY_PATH:-}" ]; then
  CUDA_ENV=${CUDA_ENV:-$REPO/.cuda/cuda-env.sh}
  [ -f "$CUDA_ENV" ] || bash "$REPO/scripts/setup_cuda.sh"
  # shellcheck disable=SC1090
  source "$CUDA_ENV"
fi

# Packages with a `cuda` feature, their targets, and where the requested examples live.
PLAN=$(cargo metadata --format-version 1 --no-deps | EXAMPLES="$EXAMPLES" python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
want = os.environ["EXAMPLES"].split()
for p in meta["packages"]:
    if p["id"] not in members or "cuda" not in p["features"]:
        continue
    print("pkg", p["name"])
    for t in p["targets"]:
        kinds = t["kind"]
        if "example" in kinds and t["name"] in want:
            print("example", p["name"], t["name"])
        elif ("bin" in kinds or "example" in kinds) and t["name"].startswith("bench"):
            print("bench", p["name"], t["name"], "example" if "example" in kinds else "bin")
')
mapfile -t PKGS < <(awk '$1=="pkg"{print $2}' <<< "$PLAN")
if [ ${#PKGS[@]} -eq 0 ]; then
  echo "gpu_build: no workspace package has a \`cuda\` feature" >&2; exit 1
fi
echo "gpu_build: packages with a cuda feature: ${PKGS[*]}"

pkg_args=(); feats=()
for p in "${PKGS[@]}"; do pkg_args+=(-p "$p"); feats+=("$p/cuda"); done
FEATURES=$(IFS=,; echo "${feats[*]}")

rm -rf "$BUNDLE" "$BUNDLE.tar.xz"; mkdir -p "$BUNDLE/tests" "$BUNDLE/examples"
MANIFEST="$BUNDLE/manifest.tsv"
: > "$MANIFEST"
JSON=$(mktemp); trap 'rm -f "$JSON"' EXIT

# Records every executable cargo reports: "<kind> <package> <target> <exe> <pkg dir>".
collect() {
  python3 -c '
import json, os, sys
for line in sys.stdin:
    if not line.startswith("{"): continue
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"): continue
    t = m["target"]; kind = t["kind"][0]
    if m["profile"]["test"]: kind = "test"
    # "path+file:///w/cuda#tessera-cuda@0.1.0", or "path+file:///w/cuda#0.1.0" when the
    # folder has the package name
    url, _, frag = m["package_id"].partition("#")
    pkg = frag.split("@")[0] if "@" in frag else url.rstrip("/").rsplit("/", 1)[-1]
    print("\t".join([kind, pkg, t["name"], m["executable"], os.path.dirname(m["manifest_path"])]))
' < "$JSON"
}

# 1. test binaries
cargo test --release --no-run --message-format=json "${pkg_args[@]}" --features "$FEATURES" > "$JSON"
while IFS=$'\t' read -r kind pkg name exe dir; do
  [ "$kind" = test ] || continue
  dst="tests/${pkg}__${name}"
  grep -qE "$TESTS" <<< "${pkg}__${name}" || continue
  cp "$exe" "$BUNDLE/$dst"
  printf 'test\t%s\t%s\n' "$dst" "${dir#"$REPO"/}" >> "$MANIFEST"
done < <(collect)

# 2. examples and bench targets, per package
while read -r kind pkg name tkind; do
  case "$kind" in
    example) args=(--example "$name"); dst="examples/$name" ;;
    bench)   args=(--"$tkind" "$name"); dst="bench_${name#bench_}"; dst="${dst%_}" ;;
    *) continue ;;
  esac
  cargo build --release --message-format=json -p "$pkg" --features "$pkg/cuda" "${args[@]}" > "$JSON"
  while IFS=$'\t' read -r k p n exe dir; do
    [ "$n" = "$name" ] && [ "$k" != test ] || continue
    cp "$exe" "$BUNDLE/$dst"
    printf '%s\t%s\t%s\n' "$kind" "$dst" "${dir#"$REPO"/}" >> "$MANIFEST"
  done < <(collect)
done < <(awk '$1=="example"||$1=="bench"' <<< "$PLAN")
for e in $EXAMPLES; do
  grep -q "^example	examples/$e	" "$MANIFEST" || echo "gpu_build: example $e not found (or its package has no cuda feature); skipped"
done

# 3. checks: no libcuda in the bundle, no run path into the stub dir, size under the limit.
if find "$BUNDLE" -name 'libcuda*' | grep -q .; then
  echo "gpu_build: a libcuda file ended up in $BUNDLE; it must never be carried" >&2; exit 1
fi
while IFS=$'\t' read -r _ path _; do
  if readelf -d "$BUNDLE/$path" 2>/dev/null | grep -E 'R(UN)?PATH' | grep -qiE 'stub|\.cuda'; then
    echo "gpu_build: $path has a run path into the CUDA stub folder" >&2; exit 1
  fi
done < "$MANIFEST"
size_mib() { du -sm "$BUNDLE" | cut -f1; }
if [ "$(size_mib)" -ge "$MAX_MIB" ]; then
  echo "gpu_build: $(size_mib) MiB, stripping debug info"
  while IFS=$'\t' read -r _ path _; do strip --strip-debug "$BUNDLE/$path"; done < "$MANIFEST"
fi
sort -o "$MANIFEST" "$MANIFEST"
CARRY=$BUNDLE
if [ "$(size_mib)" -ge "$MAX_MIB" ]; then
  echo "gpu_build: $(size_mib) MiB after stripping; packing $BUNDLE.tar.xz"
  XZ_OPT=${XZ_OPT:--6 -T0} tar cJf "$BUNDLE.tar.xz" "$BUNDLE"
  packed=$(du -m "$BUNDLE.tar.xz" | cut -f1)
  if [ "$packed" -ge "$MAX_MIB" ]; then
    du -m "$BUNDLE"/* "$BUNDLE"/*/* 2>/dev/null | sort -rn | head
    echo "gpu_build: $BUNDLE.tar.xz is $packed MiB, over the ${MAX_MIB} MiB carry limit" >&2; exit 1
  fi
  CARRY=$BUNDLE.tar.xz
fi
glibc=$(while IFS=$'\t' read -r _ path _; do objdump -T "$BUNDLE/$path" 2>/dev/null; done < "$MANIFEST" \
  | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -1)
echo "gpu_build: the binaries need ${glibc:-no versioned glibc} (the GPU machine must have at least that)"
echo "gpu_build: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)) in $((SECONDS - t0)) s:"
column -t -s $'\t' "$MANIFEST" 2>/dev/null || cat "$MANIFEST"
echo "next: the device tool with carry [\"$CARRY\"] and command: bash scripts/gpu_check.sh"

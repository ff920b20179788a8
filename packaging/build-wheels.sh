#!/usr/bin/env bash
# Builds the rbuild command as binary Python wheels (maturin `bin` bindings, see
# crates/rbuild-cli/pyproject.toml) for Linux x86_64 and aarch64, glibc (manylinux2014, glibc 2.17)
# and musl (musllinux_1_2): cross-compiled with Zig as C compiler and linker, no emulation.
#
#   packaging/build-wheels.sh [OUT_DIR]            all four wheels into OUT_DIR (default target/wheels)
#   WHEEL_TARGETS="x86_64-unknown-linux-musl" packaging/build-wheels.sh    a subset
#
# Needs Rust (rustup adds the targets), python3 with venv, and PyPI for maturin and ziglang
# (pinned by sha256 in packaging/*-requirements.txt; installed into a venv, $WHEEL_VENV, default
# target/wheel-venv). Publishing is out of scope: upload the wheels with `twine upload` or
# `uv publish`; users then `pipx install rbuild`, `uv tool install rbuild` or `uvx rbuild`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$root/target/wheels}")"
venv="${WHEEL_VENV:-$root/target/wheel-venv}"
targets=(${WHEEL_TARGETS:-x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl})

# The platform tag each target's wheel claims; maturin checks the binary against it (symbol
# versions, linked libraries) and fails when it does not hold.
compatibility() {
  case "$1" in
    *-linux-gnu) echo manylinux2014 ;;
    *-linux-musl) echo musllinux_1_2 ;;
    *) echo "build-wheels: no platform tag for target $1" >&2; return 1 ;;
  esac
}

[[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --require-hashes \
  -r "$root/packaging/maturin-requirements.txt" -r "$root/packaging/zig-requirements.txt"
export PATH="$venv/bin:$PATH"

if command -v rustup >/dev/null 2>&1; then
  rustup target add "${targets[@]}"
fi

# The wheels carry stripped binaries (--strip): the release profile's line tables would only cost
# compile time.
export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-false}"

mkdir -p "$out"
for t in "${targets[@]}"; do
  c="$(compatibility "$t")"
  echo "=== $t ($c) ===" >&2
  # --zig: Zig's clang and linker with the target's libc headers and stubs (glibc 2.17 for
  # manylinux2014), for rbuild's C dependencies (ring, zstd) and the final link.
  maturin build --release --strip --zig \
    --manifest-path "$root/crates/rbuild-cli/Cargo.toml" \
    --target "$t" --compatibility "$c" --out "$out"
done

echo "wheels in $out:" >&2
ls -l "$out"/*.whl >&2

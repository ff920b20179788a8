#!/usr/bin/env bash
# rbuild against buildah and uv, side by side, on this machine. Prints a Markdown table.
#
#   bench/run.sh [--quick] [--out FILE]
#                [--scenarios cold,warm-app,deps-change,no-change,deps-only,heavy,multi-cold,multi-warm]
#
# Runs from a fresh clone after the README's set-up command (tests/fixtures/main-job.sh), as
# root (buildah's overlay storage needs it), with network access to PyPI. It:
#
#  1. builds target/release/rbuild and the `deps_layer` example (cargo, release);
#  2. builds or reuses the base fixture (tests/fixtures/base/build-base.sh) and starts its own
#     registry (Debian's docker-registry on a free 127.0.0.1 port, as the tests do), with the
#     fixture pushed as library/python:3.11-slim;
#  3. installs uv from PyPI into a venv (cached under ~/.cache/rbuild-bench);
#  4. times each scenario with hyperfine. Every timed run starts from a saved state restored by
#     `--prepare` (registry storage, rbuild's store, buildah's storage, the app directory), so runs
#     are independent and repeatable.
#
# Peer: buildah 1.28 as root, `buildah build --isolation chroot --layers --storage-driver overlay`
# (vfs if overlay does not work here; the table says which) of bench/Dockerfile, then
# `buildah push`. The Dockerfile is the usual one; its FROM is `ARG BASE` so the local fixture can
# stand in for python:3.11-slim. During the build the host's CA bundle and a pip.conf naming it are
# mounted read-only (`-v`), so pip in the container trusts an intercepting proxy's CA as rbuild
# does; nothing of them ends up in the image.
#
# Scenarios (bench/RESULTS.md has the definitions, targets and a recorded run):
#   cold         empty rbuild store vs empty buildah storage; registry holds only the base; wheels
#                from PyPI; build + push. Both tools run in the same hyperfine invocation.
#   warm-app     one app file changed since the last build + push; build + push.
#   deps-change  one pin (bench/deps-change.txt) added to requirements.txt; build + push.
#   no-change    build + push with nothing changed; blob uploads counted in the registry log.
#   empty-runner a fresh CI runner: the registry holds the last build + push, the local store (and
#                buildah's storage) is empty, one app file changed; build + push.
#   deps-only    rbuild's dependency layer from a warm wheel store (the deps_layer example:
#                install + tar + gzip + sha256 into the store) vs `uv pip install --target` with a
#                warm uv cache, then `tar -c | gzip`.
#   heavy        numpy + pandas + scipy (bench/heavy): the deps layer alone and a whole
#                `rbuild build --output oci:` with warm wheels: wall time, MB/s of uncompressed
#                layer, peak RSS; uv + tar | gzip for comparison.
#   multi-cold   issue #9: the two-platform base fixture (amd64 + arm64 index, built once with
#                RBUILD_TEST_ARM64=1) in the registry, empty rbuild store; `rbuild build --platform
#                linux/amd64` vs `--platform linux/amd64,linux/arm64` of the same app, build + push.
#   multi-warm   the same two commands after one build + push of each, one app file changed.
#                Both multi scenarios are ratios of two commands: they are timed in interleaved
#                pairs (bench/paired.py: A B, B A, ...) rather than by hyperfine, which runs every
#                sample of one command before the other and so lets load drift move the ratio.
#
# Environment: BENCH_WORK (state directory, default a new one under /var/tmp, removed at the end
# unless BENCH_KEEP=1), RBUILD_BIN (time this rbuild binary instead of building the checkout's, e.g.
# to compare a branch; the table names it), RBUILD_BENCH_ARGS (extra `rbuild build` flags for
# every rbuild run, e.g. "--no-compile-bytecode --sbom none --no-provenance" to time the image
# session 3 built; the table names them), CARGO_TARGET_DIR, RBUILD_FIXTURE_CACHE.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/bench/run.sh"
BENCH="$ROOT/bench"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# State handling, shared by the main script and the `__prepare` calls hyperfine makes.
# ---------------------------------------------------------------------------------------------

# Unmounts anything left mounted under $WORK (a failed buildah run can leave overlay mounts).
unmount_under() {
  local dir=$1 m
  while read -r m; do
    [[ -n "$m" ]] && umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir" '$2 ~ "^"d {print $2}' /proc/mounts | sort -r)
}

# restore SNAPSHOT PART...: replaces $WORK/PART with a copy of $WORK/snap/SNAPSHOT/PART (or with an
# empty directory when the snapshot has none).
restore() {
  local snap=$1 part
  shift
  for part in "$@"; do
    if [[ $part == broot ]]; then
      unmount_under "$WORK/broot"
      unmount_under "$WORK/brun"
      rm -rf "$WORK/brun"
    fi
    rm -rf "${WORK:?}/$part"
    if [[ -e "$WORK/snap/$snap/$part" ]]; then
      cp -a "$WORK/snap/$snap/$part" "$WORK/$part"
    else
      mkdir -p "$WORK/$part"
    fi
  done
}

# save SNAPSHOT PART...
save() {
  local snap=$1 part
  shift
  mkdir -p "$WORK/snap/$snap"
  for part in "$@"; do
    rm -rf "${WORK:?}/snap/$snap/$part"
    [[ -e "$WORK/$part" ]] && cp -a "$WORK/$part" "$WORK/snap/$snap/$part"
  done
}

# prepare SCENARIO TOOL: the state one timed run starts from.
prepare() {
  local scenario=$1 tool=$2 state
  case $tool in
    rbuild) state=store ;;
    buildah) state=broot ;;
    *) state= ;;
  esac
  case $scenario in
    cold)
      restore fixture reg $state app
      ;;
    warm-app)
      restore warm reg $state app
      # One app file changed: a new value each run, so no run can hit a cache another one filled.
      sed -i "s/^BUILD_MARK = .*/BUILD_MARK = \"$(date +%s%N)\"/" "$WORK/app/app/main.py"
      ;;
    deps-change)
      restore warm reg $state app
      cat "$BENCH/deps-change.txt" >>"$WORK/app/requirements.txt"
      ;;
    no-change)
      restore warm reg $state app
      ;;
    empty-runner)
      # The registry as the last build left it; nothing on the runner's disk.
      restore warm reg app
      rm -rf "${WORK:?}/store"
      [[ $tool == buildah ]] && restore fixture broot
      sed -i "s/^BUILD_MARK = .*/BUILD_MARK = \"$(date +%s%N)\"/" "$WORK/app/app/main.py"
      ;;
    deps-only)
      rm -rf "$WORK/dstore" "$WORK/uvtarget"
      ;;
    heavy)
      restore heavy hstore
      rm -rf "$WORK/dstore" "$WORK/uvtarget" "$WORK/heavy-oci"
      ;;
    multi-cold)
      restore fixture reg mstore app
      ;;
    multi-warm)
      restore mwarm reg mstore app
      sed -i "s/^BUILD_MARK = .*/BUILD_MARK = \"$(date +%s%N)\"/" "$WORK/app/app/main.py"
      ;;
    *) die "unknown scenario $scenario" ;;
  esac
  sync -f "$WORK" 2>/dev/null || true
}

if [[ "${1:-}" == __prepare ]]; then
  : "${WORK:?}"
  prepare "$2" "$3"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Arguments and tools.
# ---------------------------------------------------------------------------------------------

ALL_SCENARIOS=(cold warm-app deps-change no-change empty-runner deps-only heavy multi-cold multi-warm)
SCENARIOS=("${ALL_SCENARIOS[@]}")
QUICK=0
OUT=
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --scenarios) IFS=, read -r -a SCENARIOS <<<"$2"; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
for s in "${SCENARIOS[@]}"; do
  [[ " ${ALL_SCENARIOS[*]} " == *" $s "* ]] || die "unknown scenario $s; known: ${ALL_SCENARIOS[*]}"
done
want() { [[ " ${SCENARIOS[*]} " == *" $1 "* ]]; }

[[ $(id -u) == 0 ]] || die "run as root (buildah's overlay storage and chroot isolation need it)"
for t in hyperfine:hyperfine buildah:buildah skopeo:skopeo docker-registry:docker-registry \
  jq:jq python3:python3 curl:curl gzip:gzip tar:tar cargo:"Rust (rustup)"; do
  command -v "${t%%:*}" >/dev/null 2>&1 || die "\`${t%%:*}\` not found; install ${t#*:} (apt-get install ${t#*:})"
done

# Number of timed runs per scenario (--quick: fewer, for trying the script out).
declare -A RUNS=([cold]=3 [warm-app]=10 [deps-change]=5 [no-change]=10 [empty-runner]=3
  [deps-only]=10 [heavy]=5 [multi-cold]=9 [multi-warm]=30)
if [[ $QUICK == 1 ]]; then
  RUNS=([cold]=1 [warm-app]=3 [deps-change]=1 [no-change]=3 [empty-runner]=1 [deps-only]=3
    [heavy]=1 [multi-cold]=2 [multi-warm]=3)
fi

WORK=${BENCH_WORK:-$(mktemp -d /var/tmp/rbuild-bench.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
export WORK
mkdir -p "$WORK/results"

REG_PID=
cleanup() {
  local rc=$?
  if [[ -n "$REG_PID" ]]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  fi
  unmount_under "$WORK"
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    log "state kept in $WORK"
  elif [[ -z "${BENCH_WORK:-}" ]]; then
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

# ---------------------------------------------------------------------------------------------
# Set-up: rbuild, fixture, registry, uv.
# ---------------------------------------------------------------------------------------------

cd "$ROOT"
log "building rbuild and the deps_layer example (cargo build --release)"
cargo_json() {
  cargo build -q --release "$@" --message-format=json \
    | jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' | tail -n1
}
if [[ -n "${RBUILD_BIN:-}" ]]; then
  BIN=$(readlink -f "$RBUILD_BIN")
  log "timing $BIN (RBUILD_BIN) instead of this checkout's rbuild"
else
  BIN=$(cargo_json -p rbuild-cli --bin rbuild)
fi
DEPS_LAYER=$(cargo_json -p rbuild-wheel --example deps_layer)
[[ -x "$BIN" && -x "$DEPS_LAYER" ]] || die "cargo build produced no binary"

log "base fixture (tests/fixtures/base/build-base.sh)"
FIXTURE=$(tests/fixtures/base/build-base.sh | sed -n 's/^FIXTURE_DIR=//p' | tail -n1)
[[ -n "$FIXTURE" ]] || die "the fixture build printed no FIXTURE_DIR"

# shellcheck source=tests/fixtures/registry.sh
. "$ROOT/tests/fixtures/registry.sh"
start_registry "$WORK/registry.yml" "$WORK/reg" "$WORK/registry.log" || die "docker-registry did not start"
HOST=$REGISTRY_HOST
REG_PID=$REGISTRY_PID
BASE="$HOST/library/python:3.11-slim"
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$FIXTURE:3.11-slim" "docker://$BASE"
log "registry http://$HOST with the fixture as $BASE (state in $WORK)"
MBASE="$HOST/library/python-multi:3.11-slim"
if want multi-cold || want multi-warm; then
  log "two-platform base fixture (RBUILD_TEST_ARM64=1 tests/fixtures/base/build-base.sh; minutes under qemu the first time)"
  MFIXTURE=$(RBUILD_TEST_ARM64=1 tests/fixtures/base/build-base.sh | sed -n 's/^FIXTURE_DIR=//p' | tail -n1)
  [[ -n "$MFIXTURE" ]] || die "the two-platform fixture build printed no FIXTURE_DIR"
  skopeo copy --quiet --all --preserve-digests --dest-tls-verify=false "oci:$MFIXTURE:3.11-slim" "docker://$MBASE"
  log "two-platform base (amd64 + arm64 index) as $MBASE"
fi

UVENV=${XDG_CACHE_HOME:-$HOME/.cache}/rbuild-bench/uvenv
if [[ ! -x "$UVENV/bin/uv" ]]; then
  log "installing uv from PyPI into $UVENV"
  python3 -m venv "$UVENV"
  "$UVENV/bin/pip" install -q uv
fi
UV="$UVENV/bin/uv"
export UV_CACHE_DIR="$WORK/uvcache" UV_NO_PROGRESS=1
PY=$(command -v python3.11 || command -v python3)

# pip inside the buildah container trusts what the host trusts (see the header).
CA=/etc/ssl/certs/ca-certificates.crt
printf '[global]\ncert = %s\n' "$CA" >"$WORK/pip.conf"
PEER_MOUNTS=()
[[ -f $CA ]] && PEER_MOUNTS=(-v "$CA:$CA:ro" -v "$WORK/pip.conf:/etc/pip.conf:ro")

cp -a "$BENCH/app" "$WORK/app"
cp -a "$BENCH/heavy" "$WORK/heavy"
save fixture reg app

export RBUILD_CACHE_DIR_APP="$WORK/store"
read -ra BENCH_ARGS <<<"${RBUILD_BENCH_ARGS:-}"
RB_BASE=("$BIN" build --insecure-registry "$HOST" -q --base "$BASE" "${BENCH_ARGS[@]}")
rbuild_cmd() { # CONTEXT STORE ARGS...: one shell-quoted command line
  local ctx=$1 store=$2
  shift 2
  printf 'env RBUILD_CACHE_DIR=%q' "$store"
  printf ' %q' "${RB_BASE[@]}" "$ctx" "$@"
}
RBUILD_APP=$(rbuild_cmd "$WORK/app" "$WORK/store" --to "$HOST/demo/app:latest")

DRIVER=overlay
buildah_cmd() {
  local b
  b=$(printf '%q ' buildah --root "$WORK/broot" --runroot "$WORK/brun" --storage-driver "$DRIVER")
  printf '%s' "$b"
  printf '%q ' build -q --isolation chroot --layers --tls-verify=false --build-arg "BASE=$BASE" \
    "${PEER_MOUNTS[@]}" -f "$BENCH/Dockerfile" -t bench/app:latest "$WORK/app"
  printf '>/dev/null && %s' "$b"
  printf '%q ' push -q --tls-verify=false bench/app:latest "docker://$HOST/peer/app:latest"
}

log "warm state: one build + push with each tool"
eval "$RBUILD_APP" >/dev/null
if ! eval "$(buildah_cmd)" >"$WORK/buildah-probe.log" 2>&1; then
  log "buildah with overlay storage failed here (see below); using vfs"
  tail -n 5 "$WORK/buildah-probe.log" >&2
  DRIVER=vfs
  rm -rf "$WORK/broot" "$WORK/brun"
  eval "$(buildah_cmd)" >/dev/null
fi
BUILDAH_APP=$(buildah_cmd)
unmount_under "$WORK/broot"
save warm reg store broot app

# Issue #9: one platform vs two, the same app, the same two-platform base.
rbuild_multi_cmd() { # REPO PLATFORMS
  printf 'env RBUILD_CACHE_DIR=%q' "$WORK/mstore"
  printf ' %q' "$BIN" build --insecure-registry "$HOST" -q --base "$MBASE" "$WORK/app" \
    --platform "$2" --to "$HOST/$1:latest"
}
RBUILD_ONE=$(rbuild_multi_cmd demo/one linux/amd64)
RBUILD_TWO=$(rbuild_multi_cmd demo/two linux/amd64,linux/arm64)
if want multi-cold || want multi-warm; then
  log "warm state for multi-warm: one build + push of each"
  prepare multi-cold x
  eval "$RBUILD_ONE" >/dev/null
  eval "$RBUILD_TWO" >/dev/null
  save mwarm reg mstore app
fi

# Wheels in the store, by file name, for the deps_layer example.
link_wheels() { # STORE DIR
  mkdir -p "$2"
  local f name sha
  for f in "$1"/keys/wheel-files/*; do
    name=$(jq -r .filename "$f")
    sha=$(jq -r '.sha256 | sub("^sha256:"; "")' "$f")
    ln -sf "$1/blobs/sha256/$sha" "$2/$name"
  done
}
link_wheels "$WORK/store" "$WORK/wheels-app"

if want deps-only || want heavy; then
  log "warm uv cache"
  "$UV" pip install -q --target "$WORK/uvtarget" --python "$PY" -r "$WORK/app/requirements.txt"
  rm -rf "$WORK/uvtarget"
fi
if want heavy; then
  log "heavy: wheels into a second store and the uv cache"
  eval "$(rbuild_cmd "$WORK/heavy" "$WORK/hstore" --output "oci:$WORK/heavy-oci:latest")" >/dev/null
  rm -rf "$WORK/hstore/keys/layers" "$WORK/heavy-oci"
  save heavy hstore
  link_wheels "$WORK/hstore" "$WORK/wheels-heavy"
  "$UV" pip install -q --target "$WORK/uvtarget" --python "$PY" -r "$WORK/heavy/requirements.txt"
  rm -rf "$WORK/uvtarget"
fi

# ---------------------------------------------------------------------------------------------
# Timing.
# ---------------------------------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# Blob uploads per repository so far (finished uploads: PUT .../blobs/uploads/UUID?digest=...).
uploads() { grep -cE "\"PUT /v2/$1/blobs/uploads/[^ ]*digest=" "$WORK/registry.log" || true; }

# bench SCENARIO WARMUP NAME1 PREP1 CMD1 [NAME2 PREP2 CMD2 ...]: hyperfine into results/SCENARIO.json,
# and results/SCENARIO.uploads (uploads per timed or warm-up run for the repositories in UP_REPOS,
# by default demo/app (rbuild) and peer/app (buildah): "first second runs").
bench() {
  local scenario=$1 warmup=$2
  shift 2
  local args=() specs=() u0 p0 repos
  read -r -a repos <<<"${UP_REPOS:-demo/app peer/app}"
  while [[ $# -gt 0 ]]; do
    args+=(--command-name "$1" --prepare "$2" "$3")
    specs+=("$1" "$2" "$3")
    shift 3
  done
  u0=$(uploads "${repos[0]}")
  p0=$(uploads "${repos[1]}")
  log "$scenario (${RUNS[$scenario]} runs${PAIRED:+, interleaved pairs})"
  if [[ -n "${PAIRED:-}" ]]; then
    # A ratio of two commands (issue #9): timed in interleaved pairs (bench/paired.py).
    python3 "$BENCH/paired.py" --runs "${RUNS[$scenario]}" --warmup "$warmup" \
      --export-json "$WORK/results/$scenario.json" "${specs[@]}" >&2
  else
    hyperfine --style basic --runs "${RUNS[$scenario]}" --warmup "$warmup" \
      --export-json "$WORK/results/$scenario.json" "${args[@]}" >&2
  fi
  local n=$((RUNS[$scenario] + warmup))
  echo "$(($(uploads "${repos[0]}") - u0)) $(($(uploads "${repos[1]}") - p0)) $n" >"$WORK/results/$scenario.uploads"
}
P() { printf '%q __prepare %q %q' "$SELF" "$1" "$2"; }

if want cold; then
  bench cold 0 rbuild "$(P cold rbuild)" "$RBUILD_APP" buildah "$(P cold buildah)" "$BUILDAH_APP"
fi
if want warm-app; then
  bench warm-app 1 rbuild "$(P warm-app rbuild)" "$RBUILD_APP" buildah "$(P warm-app buildah)" "$BUILDAH_APP"
fi
if want deps-change; then
  bench deps-change 0 rbuild "$(P deps-change rbuild)" "$RBUILD_APP" buildah "$(P deps-change buildah)" "$BUILDAH_APP"
fi
if want no-change; then
  bench no-change 1 rbuild "$(P no-change rbuild)" "$RBUILD_APP" buildah "$(P no-change buildah)" "$BUILDAH_APP"
fi
if want empty-runner; then
  bench empty-runner 0 rbuild "$(P empty-runner rbuild)" "$RBUILD_APP" buildah "$(P empty-runner buildah)" "$BUILDAH_APP"
fi

# Uploads are counted per command's repository (demo/one, demo/two): shared blobs go up once.
if want multi-cold; then
  PAIRED=1 UP_REPOS="demo/one demo/two" bench multi-cold 0 one-platform "$(P multi-cold x)" "$RBUILD_ONE" \
    two-platforms "$(P multi-cold x)" "$RBUILD_TWO"
fi
if want multi-warm; then
  PAIRED=1 UP_REPOS="demo/one demo/two" bench multi-warm 1 one-platform "$(P multi-warm x)" "$RBUILD_ONE" \
    two-platforms "$(P multi-warm x)" "$RBUILD_TWO"
fi

deps_layer_cmd() { # WHEEL_DIR
  printf '%q --store %q %q/*.whl' "$DEPS_LAYER" "$WORK/dstore" "$1"
}
uv_tar_cmd() { # REQUIREMENTS
  printf '%q pip install -q --offline --target %q --python %q -r %q && tar -C %q -cf - . | gzip >/dev/null' \
    "$UV" "$WORK/uvtarget" "$PY" "$1" "$WORK/uvtarget"
}
if want deps-only; then
  prepare deps-only x
  eval "$(deps_layer_cmd "$WORK/wheels-app")" >"$WORK/results/deps-only.layer.json"
  bench deps-only 1 rbuild "$(P deps-only rbuild)" "$(deps_layer_cmd "$WORK/wheels-app")" \
    uv "$(P deps-only uv)" "$(uv_tar_cmd "$WORK/app/requirements.txt")"
fi

# Peak RSS (kB) of a command run directly (no shell in between).
peak_rss() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}
if want heavy; then
  prepare heavy x
  eval "$(deps_layer_cmd "$WORK/wheels-heavy")" >"$WORK/results/heavy.layer.json"
  RBUILD_HEAVY=$(rbuild_cmd "$WORK/heavy" "$WORK/hstore" --output "oci:$WORK/heavy-oci:latest")
  bench heavy 0 rbuild-layer "$(P heavy rbuild)" "$(deps_layer_cmd "$WORK/wheels-heavy")" \
    rbuild-build "$(P heavy rbuild)" "$RBUILD_HEAVY" \
    uv "$(P heavy uv)" "$(uv_tar_cmd "$WORK/heavy/requirements.txt")"
  prepare heavy x
  peak_rss "$DEPS_LAYER" --store "$WORK/dstore" "$WORK"/wheels-heavy/*.whl >"$WORK/results/heavy.rss-layer"
  prepare heavy x
  peak_rss env "RBUILD_CACHE_DIR=$WORK/hstore" "${RB_BASE[@]}" "$WORK/heavy" \
    --output "oci:$WORK/heavy-oci:latest" >"$WORK/results/heavy.rss-build"
fi

# ---------------------------------------------------------------------------------------------
# The table.
# ---------------------------------------------------------------------------------------------

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ -n "${RBUILD_BIN:-}" ]]; then
  RBUILD_REV="$BIN"
  rev=$(git -C "$(dirname "$BIN")" rev-parse --short=12 HEAD 2>/dev/null) && RBUILD_REV="$RBUILD_REV (checkout at $rev)"
else
  RBUILD_REV=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || RBUILD_REV="$RBUILD_REV with uncommitted changes in crates/"
fi
if [[ -n "${RBUILD_BENCH_ARGS:-}" ]]; then
  RBUILD_REV="$RBUILD_REV, every build with \`$RBUILD_BENCH_ARGS\`"
fi
export BENCH_META
BENCH_META=$(jq -n \
  --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" \
  --arg cpu "$(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1))" \
  --arg ram "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)" \
  --arg kernel "$(uname -r)" \
  --arg rbuild "$RBUILD_REV" \
  --arg buildah "$(buildah --version | awk '{print $3}')" \
  --arg driver "$DRIVER" \
  --arg uv "$("$UV" --version | awk '{print $2}')" \
  --arg hyperfine "$(hyperfine --version | awk '{print $2}')" \
  --arg quick "$QUICK" \
  --arg load "$LOAD_BEFORE at the start, $LOAD_AFTER at the end" \
  '$ARGS.named')
TABLE=$(python3 "$BENCH/table.py" "$WORK/results")
if [[ -n "$OUT" ]]; then
  printf '%s\n' "$TABLE" >"$OUT"
  log "table written to $OUT"
fi
printf '%s\n' "$TABLE"

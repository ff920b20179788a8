#!/usr/bin/env bash
# heavy-deps-change (issue #21): the heavy set (bench/heavy: numpy + pandas + scipy and their
# dependencies), one small pure-Python pin added (bench/deps-change.txt: six), build + push on
# loopback, with the dependencies in one layer (--deps-layers 1, as before) and under the default
# budget (--deps-layers 8). Prints a Markdown table: time, bytes uploaded, and which layers changed.
#
#   bench/heavy-deps-change.sh [--runs N]
#
# As root, after the README's set-up command, with network access to PyPI. It builds
# target/release/rbuild, reuses the base fixture (tests/fixtures/base/build-base.sh), starts its
# own registry (tests/fixtures/registry.sh), builds + pushes bench/heavy once per mode into a
# saved state (registry storage, rbuild's store, the app), and then times, with hyperfine, the
# build + push after the pin is added; every run starts from the saved state (`--prepare`), so
# each run uploads what a real one would. Bytes uploaded are the sizes of the blobs whose upload
# finished in the registry's access log during one extra, untimed run.
#
# Environment: BENCH_WORK (state directory; default a new one under /var/tmp, removed at the end
# unless BENCH_KEEP=1), RBUILD_BIN (time this binary instead of building the checkout's).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/bench/heavy-deps-change.sh"
log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
MODES=(1 8)

# State for hyperfine's --prepare: `heavy-deps-change.sh __prepare N` (the registry reads its
# storage from disk on every request, so replacing it under the running registry is safe).
prepare() {
  local n=$1
  rm -rf "$WORK/app" "$WORK/store-$n" "$WORK/reg"
  cp -a "$WORK/snap/app" "$WORK/app"
  cp -a "$WORK/snap/store-$n" "$WORK/store-$n"
  cp -a "$WORK/snap/reg" "$WORK/reg"
  cat "$ROOT/bench/deps-change.txt" >>"$WORK/app/requirements.txt"
}
if [[ "${1:-}" == __prepare ]]; then
  : "${WORK:?}"
  prepare "$2"
  exit 0
fi

RUNS=10
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
for t in hyperfine skopeo docker-registry jq python3 cargo curl; do
  command -v "$t" >/dev/null || die "\`$t\` not found"
done

WORK=${BENCH_WORK:-$(mktemp -d /var/tmp/rbuild-heavy-deps.XXXXXX)}
mkdir -p "$WORK/snap"
WORK=$(cd "$WORK" && pwd)
export WORK
REG_PID=
cleanup() {
  local rc=$?
  [[ -n "$REG_PID" ]] && { kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; }
  if [[ "${BENCH_KEEP:-0}" != 1 && -z "${BENCH_WORK:-}" ]]; then rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT

cd "$ROOT"
if [[ -n "${RBUILD_BIN:-}" ]]; then
  BIN=$RBUILD_BIN
else
  log "building rbuild (release)"
  BIN=$(cargo build -q --release -p rbuild-cli --bin rbuild --message-format=json \
    | jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' | tail -n1)
fi
FIXTURE=$(tests/fixtures/base/build-base.sh | sed -n 's/^FIXTURE_DIR=//p' | tail -n1)
# shellcheck source=tests/fixtures/registry.sh
. "$ROOT/tests/fixtures/registry.sh"
start_registry "$WORK/registry.yml" "$WORK/reg" "$WORK/registry.log" || die "docker-registry did not start"
HOST=$REGISTRY_HOST
REG_PID=$REGISTRY_PID
BASE="$HOST/library/python:3.11-slim"
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$FIXTURE:3.11-slim" "docker://$BASE"

rb() { # N STORE: one build + push of $WORK/app, JSON on stdout
  env RBUILD_CACHE_DIR="$2" "$BIN" build --insecure-registry "$HOST" -q --json --base "$BASE" \
    --deps-layers "$1" "$WORK/app" --to "$HOST/bench/heavy-$1:latest"
}

# The saved state: the heavy set built + pushed once per mode (wheels downloaded once, shared).
cp -a bench/heavy "$WORK/snap/app"
mkdir -p "$WORK/wheels"
for n in "${MODES[@]}"; do
  rm -rf "$WORK/app"; cp -a "$WORK/snap/app" "$WORK/app"
  log "first build + push, --deps-layers $n"
  rb "$n" "$WORK/snap/store-$n" >"$WORK/before-$n.json"
done
cp -a "$WORK/reg" "$WORK/snap/reg"

declare -A TIME UPLOADED TOTAL CHANGED
for n in "${MODES[@]}"; do
  # One untimed run for the bytes and the layers that changed.
  prepare "$n"
  start=$(wc -l <"$WORK/registry.log")
  rb "$n" "$WORK/store-$n" >"$WORK/after-$n.json"
  sleep 0.3
  tail -n +"$((start + 1))" "$WORK/registry.log" \
    | grep -oE "\"PUT /v2/[^ ]*/blobs/uploads/[^ ]*digest=sha256(:|%3A)[0-9a-f]{64}" \
    | grep -oE "[0-9a-f]{64}$" | sed 's/^/sha256:/' | sort -u >"$WORK/uploaded-$n.txt"
  UPLOADED[$n]=$(jq -r --rawfile up "$WORK/uploaded-$n.txt" \
    '[.platforms[0].layers[] | select(.digest as $d | $up | split("\n") | index($d)) | .size] | add // 0' \
    "$WORK/after-$n.json")
  TOTAL[$n]=$(jq '[.platforms[0].layers[] | select(.kind == "deps") | .size] | add' "$WORK/after-$n.json")
  CHANGED[$n]=$(python3 - "$WORK/before-$n.json" "$WORK/after-$n.json" <<'PY'
import json, sys
before, after = (json.load(open(p))["platforms"][0]["layers"] for p in sys.argv[1:3])
old = {l["digest"] for l in before}
deps = [l for l in after if l["kind"] == "deps"]
changed = [f'deps {i + 1}/{len(deps)} ({l["size"] / 1e6:.2f} MB)' for i, l in enumerate(deps) if l["digest"] not in old]
kept = sum(1 for l in deps if l["digest"] in old)
app = [l for l in after if l["kind"] == "app" and l["digest"] not in old]
print(", ".join(changed + ["app"] * len(app)) + f"; {kept} of {len(deps)} deps layers unchanged")
PY
)
  log "--deps-layers $n: timing $RUNS runs"
  hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$WORK/time-$n.json" \
    --prepare "$SELF __prepare $n" \
    -n "heavy-deps-change --deps-layers $n" \
    "$(printf '%q ' env RBUILD_CACHE_DIR="$WORK/store-$n" "$BIN" build --insecure-registry "$HOST" -q --base "$BASE" --deps-layers "$n" "$WORK/app" --to "$HOST/bench/heavy-$n:latest")" >&2
  TIME[$n]=$(jq -r '.results[0] | "\(.median) \(.min) \(.max)"' "$WORK/time-$n.json")
done

printf '| --deps-layers | build + push (median, min–max) | uploaded | dependency bytes (gzip) | uploaded / deps | layers changed |\n|---|---|---|---|---|---|\n'
for n in "${MODES[@]}"; do
  read -r med lo hi <<<"${TIME[$n]}"
  python3 - "$n" "$med" "$lo" "$hi" "${UPLOADED[$n]}" "${TOTAL[$n]}" "${CHANGED[$n]}" <<'PY'
import sys
n, med, lo, hi, up, total, changed = sys.argv[1:8]
med, lo, hi, up, total = float(med), float(lo), float(hi), int(up), int(total)
print(f"| {n} | {med*1000:.0f} ms ({lo*1000:.0f}–{hi*1000:.0f}) | {up/1e6:.2f} MB | {total/1e6:.1f} MB | {up*100/total:.1f} % | {changed} |")
PY
done

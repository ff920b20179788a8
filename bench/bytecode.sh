#!/usr/bin/env bash
# Bytecode (issue #15), side by side in one run: what it saves at container start and what it
# costs at build time. Prints a Markdown table.
#
#   bench/bytecode.sh [--runs N]
#
# As root (runc), after the README's set-up command, with network access to PyPI. It builds
# target/release/rbuild, reuses the base fixture (tests/fixtures/base/build-base.sh), starts its
# own registry (tests/fixtures/registry.sh) and then:
#
#  1. import time: builds examples/fastapi-app with and without bytecode on two bases, the Debian
#     base fixture (Debian compiles its standard library when python3 is installed) and the
#     Docker Hub layout (tests/fixtures/kinds/build-kind.sh local: like Docker Hub's python
#     images, no .pyc anywhere under /usr/local), unpacks the images with umoci and runs each N
#     times with runc, interleaved (with, without, with, ...); every run is a new container whose
#     Python measures `import fastapi, uvicorn, pydantic` and then `import app.main` (which builds
#     the app's pydantic models) with time.perf_counter (the first import in that process).
#     Medians and the ratios, for the libraries alone and with the app.
#  2. build time, hyperfine, each run from a saved state: cold (empty store, wheels from PyPI),
#     warm-app (one app file changed since the last build + push, lock unchanged) and deps-change
#     (one pin added), each with --compile-bytecode and --no-compile-bytecode, build + push.
#
# Environment: BENCH_WORK (state directory; default a new one under /var/tmp, removed at the end
# unless BENCH_KEEP=1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/bench/bytecode.sh"
log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# State for hyperfine's --prepare: `bytecode.sh __prepare SCENARIO MODE`.
prepare() {
  local scenario=$1 mode=$2
  rm -rf "$WORK/app" "$WORK/store-$mode"
  cp -a "$WORK/snap/app" "$WORK/app"
  case $scenario in
    cold) mkdir -p "$WORK/store-$mode" ;;
    warm-app)
      cp -a "$WORK/snap/store-$mode" "$WORK/store-$mode"
      sed -i "s/^BUILD_MARK = .*/BUILD_MARK = \"$(date +%s%N)\"/" "$WORK/app/app/main.py"
      ;;
    deps-change)
      cp -a "$WORK/snap/store-$mode" "$WORK/store-$mode"
      cat "$ROOT/bench/deps-change.txt" >>"$WORK/app/requirements.txt"
      ;;
  esac
  # The copy just written (the store holds the unpacked base, 128 MB) is flushed before the timed
  # run, so the run does not pay for the kernel writing back the restore.
  sync
}
if [[ "${1:-}" == __prepare ]]; then
  : "${WORK:?}"
  prepare "$2" "$3"
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
[[ $(id -u) == 0 ]] || die "run as root (runc)"
for t in hyperfine skopeo umoci runc docker-registry jq python3 cargo; do
  command -v "$t" >/dev/null || die "\`$t\` not found"
done

WORK=${BENCH_WORK:-$(mktemp -d /var/tmp/rbuild-bytecode.XXXXXX)}
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
log "building rbuild (release)"
BIN=$(cargo build -q --release -p rbuild-cli --bin rbuild --message-format=json \
  | jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' | tail -n1)
FIXTURE=$(tests/fixtures/base/build-base.sh | sed -n 's/^FIXTURE_DIR=//p' | tail -n1)
# shellcheck source=tests/fixtures/registry.sh
. "$ROOT/tests/fixtures/registry.sh"
start_registry "$WORK/registry.yml" "$WORK/reg" "$WORK/registry.log" || die "docker-registry did not start"
HOST=$REGISTRY_HOST
REG_PID=$REGISTRY_PID
BASE="$HOST/library/python:3.11-slim"
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$FIXTURE:3.11-slim" "docker://$BASE"

LOCAL_FIXTURE=$(tests/fixtures/kinds/build-kind.sh local | sed -n 's/^FIXTURE_DIR=//p' | tail -n1)
BASE_HUB="$HOST/library/python:docker-hub-layout"
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$LOCAL_FIXTURE:local" "docker://$BASE_HUB"

rb() { # MODE STORE CONTEXT TO [BASE]: one build + push
  env RBUILD_CACHE_DIR="$2" "$BIN" build --insecure-registry "$HOST" -q --base "${5:-$BASE}" \
    "--$1" "$3" --to "$4"
}

# ---------------------------------------------------------------------------------------------
# 1. Import time in the running image.
# ---------------------------------------------------------------------------------------------
cp -a examples/fastapi-app "$WORK/fastapi"
declare -A BUNDLE
declare -A BASES=([debian]="$BASE" [docker-hub]="$BASE_HUB")
for b in debian docker-hub; do
  for mode in compile-bytecode no-compile-bytecode; do
    rb "$mode" "$WORK/import-store" "$WORK/fastapi" "$HOST/bench/import-$b:$mode" "${BASES[$b]}" >/dev/null
    skopeo copy -q --src-tls-verify=false "docker://$HOST/bench/import-$b:$mode" "oci:$WORK/oci-$b-$mode:img"
    umoci unpack --image "$WORK/oci-$b-$mode:img" "$WORK/bundle-$b-$mode" >/dev/null
    # The image's own user, env and working directory; our process instead of the entrypoint.
    jq '.process.terminal = false | .process.args = ["python3", "-c",
        "import time; t = time.perf_counter(); import fastapi, uvicorn, pydantic; u = time.perf_counter(); import app.main; print(u - t, time.perf_counter() - t)"]' \
      "$WORK/bundle-$b-$mode/config.json" >"$WORK/config.tmp" && mv "$WORK/config.tmp" "$WORK/bundle-$b-$mode/config.json"
    BUNDLE[$b-$mode]="$WORK/bundle-$b-$mode"
  done
done
log "import time: $RUNS containers each, interleaved"
: >"$WORK/import.txt"
for i in $(seq "$RUNS"); do
  for b in debian docker-hub; do
    for mode in compile-bytecode no-compile-bytecode; do
      s=$(runc run -b "${BUNDLE[$b-$mode]}" "rbuild-bc-$$-$i-$b-${mode:0:2}" </dev/null)
      echo "$b-$mode $s" >>"$WORK/import.txt"
    done
  done
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
declare -A IMPORT
for b in debian docker-hub; do
  for mode in compile-bytecode no-compile-bytecode; do
    IMPORT[$b-$mode-libs]=$(awk -v k="$b-$mode" '$1 == k {print $2}' "$WORK/import.txt" | median)
    IMPORT[$b-$mode-app]=$(awk -v k="$b-$mode" '$1 == k {print $3}' "$WORK/import.txt" | median)
  done
done

# ---------------------------------------------------------------------------------------------
# 2. Build time with and without bytecode.
# ---------------------------------------------------------------------------------------------
cp -a bench/app "$WORK/snap/app"
for mode in compile-bytecode no-compile-bytecode; do
  cp -a "$WORK/snap/app" "$WORK/app"
  rb "$mode" "$WORK/snap/store-$mode" "$WORK/app" "$HOST/bench/app-$mode:latest" >/dev/null
  rm -rf "$WORK/app"
done
declare -A BUILD
for scenario in cold warm-app deps-change; do
  runs=$RUNS
  [[ $scenario == cold ]] && runs=3
  log "$scenario ($runs runs each)"
  hyperfine --style basic --runs "$runs" --warmup 1 --export-json "$WORK/$scenario.json" \
    --prepare "$SELF __prepare $scenario compile-bytecode" \
    -n "$scenario bytecode" "$(printf '%q ' env RBUILD_CACHE_DIR="$WORK/store-compile-bytecode" "$BIN" build --insecure-registry "$HOST" -q --base "$BASE" --compile-bytecode "$WORK/app" --to "$HOST/bench/app-compile-bytecode:latest")" \
    --prepare "$SELF __prepare $scenario no-compile-bytecode" \
    -n "$scenario none" "$(printf '%q ' env RBUILD_CACHE_DIR="$WORK/store-no-compile-bytecode" "$BIN" build --insecure-registry "$HOST" -q --base "$BASE" --no-compile-bytecode "$WORK/app" --to "$HOST/bench/app-no-compile-bytecode:latest")" \
    >&2
  BUILD[$scenario]=$(jq -r '[.results[] | .median] | "\(.[0]) \(.[1])"' "$WORK/$scenario.json")
done

# ---------------------------------------------------------------------------------------------
printf '| measure | with bytecode | without | ratio / added |\n|---|---|---|---|\n'
for b in debian docker-hub; do
  python3 - "$b" "${IMPORT[$b-compile-bytecode-libs]}" "${IMPORT[$b-no-compile-bytecode-libs]}" \
    "${IMPORT[$b-compile-bytecode-app]}" "${IMPORT[$b-no-compile-bytecode-app]}" <<'PY'
import sys
name = {"debian": "Debian base", "docker-hub": "Docker Hub layout"}[sys.argv[1]]
wl, wol, w, wo = map(float, sys.argv[2:6])
print(f"| first import of fastapi, uvicorn, pydantic, {name} (median) | {wl*1000:.0f} ms | {wol*1000:.0f} ms | {wol/wl:.2f}x faster |")
print(f"| first import of fastapi, uvicorn, pydantic, app.main, {name} (median) | {w*1000:.0f} ms | {wo*1000:.0f} ms | {wo/w:.2f}x faster |")
PY
done
for scenario in cold warm-app deps-change; do
  read -r w wo <<<"${BUILD[$scenario]}"
  python3 - "$scenario" "$w" "$wo" <<'PY'
import sys
s = sys.argv[1]
w, wo = map(float, sys.argv[2:4])
print(f"| build + push, {s} (median) | {w*1000:.0f} ms | {wo*1000:.0f} ms | {(w-wo)*1000:+.0f} ms |")
PY
done

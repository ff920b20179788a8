#!/usr/bin/env bash
# A project whose lock pins two sdist-only packages (issue #16): the Flask example plus docopt 0.6.2
# and termcolor 1.1.0 (PyPI has no wheel of either), the project tests/sdist_e2e.rs builds. Prints a
# Markdown table of build + push times:
#
#   cold      empty store: every wheel and both sdists downloaded, the sdists built into wheels by
#             the base's own Python, layers built, pushed to a registry holding only the base;
#   warm-app  one app file changed since the last build + push (lock unchanged: no sdist built,
#             no wheel opened).
#
#   bench/sdists.sh [--runs N]
#
# As root, after the README's set-up command, with network access to PyPI. Builds
# target/release/rbuild, reuses the base fixture and starts its own registry.
# Environment: BENCH_WORK (state directory; default a new one under /var/tmp, removed at the end
# unless BENCH_KEEP=1).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/bench/sdists.sh"
log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
prepare() { # SCENARIO: restore the saved state
  rm -rf "$WORK/app" "$WORK/store"
  cp -a "$WORK/snap/app" "$WORK/app"
  case $1 in
    cold) mkdir -p "$WORK/store" ;;
    warm-app)
      cp -a "$WORK/snap/store" "$WORK/store"
      printf '\nBUILD_MARK = "%s"\n' "$(date +%s%N)" >>"$WORK/app/app/main.py"
      ;;
  esac
}
if [[ "${1:-}" == __prepare ]]; then
  : "${WORK:?}"
  prepare "$2"
  exit 0
fi
RUNS=5
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
for t in hyperfine skopeo docker-registry jq python3 cargo; do
  command -v "$t" >/dev/null || die "\`$t\` not found"
done
WORK=${BENCH_WORK:-$(mktemp -d /var/tmp/rbuild-sdists.XXXXXX)}
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
# The project of tests/sdist_e2e.rs: the Flask example, its lock plus the two sdists, its code
# using both.
cp -a examples/flask-app "$WORK/snap/app"
cat >>"$WORK/snap/app/requirements.txt" <<'EOF'
docopt==0.6.2 \
    --hash=sha256:49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491
termcolor==1.1.0 \
    --hash=sha256:1d6d69ce66211143803fbc56652b41d73b4a400a2891d7bf7a1cdf4c02de613b
EOF
cat >"$WORK/snap/app/app/main.py" <<'EOF'
"""The Flask example, using the two sdist-only packages."""

import docopt
from flask import Flask
from termcolor import colored

app = Flask(__name__)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/sdists")
def sdists():
    return {"docopt": docopt.__version__, "colored": colored("hi", "red")}
EOF
TO="$HOST/bench/sdists:latest"
CMD=$(printf '%q ' env RBUILD_CACHE_DIR="$WORK/store" "$BIN" build --insecure-registry "$HOST" -q --base "$BASE" "$WORK/app" --to "$TO")
# The saved warm state: one build + push.
cp -a "$WORK/snap/app" "$WORK/app"
env RBUILD_CACHE_DIR="$WORK/snap/store" "$BIN" build --insecure-registry "$HOST" -v --base "$BASE" "$WORK/app" --to "$TO" 2>"$WORK/first.log" >/dev/null
grep -q 'sdist' "$WORK/first.log" || die "the first build built no sdist: $(cat "$WORK/first.log")"
rm -rf "$WORK/app"
declare -A MED
for scenario in cold warm-app; do
  log "$scenario ($RUNS runs)"
  hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$WORK/$scenario.json" \
    --prepare "$SELF __prepare $scenario" -n "$scenario" "$CMD" >&2
  MED[$scenario]=$(jq -r '.results[0] | "\(.median) \(.min) \(.max)"' "$WORK/$scenario.json")
done
printf '| scenario (two sdists built by the base'"'"'s Python) | rbuild build + push, median (min–max) |\n|---|---|\n'
for scenario in cold warm-app; do
  read -r med min max <<<"${MED[$scenario]}"
  python3 - "$scenario" "$med" "$min" "$max" <<'PY'
import sys
s = sys.argv[1]
med, lo, hi = (float(x) * 1000 for x in sys.argv[2:5])
print(f"| {s} | {med:.0f} ms ({lo:.0f}–{hi:.0f}) |")
PY
done

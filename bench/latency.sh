#!/usr/bin/env bash
# latency (issue #21): bench/app built + pushed against a registry 50 ms away. A delaying TCP proxy
# (bench/latency-proxy.py, 25 ms each way; connecting is free, as in the issue's model) stands in
# front of the local registry, and every reference (the base, the destination) goes through it.
# Prints a Markdown table: for rbuild (and buildah, unless --no-peer) cold, warm-app and no-change
# time through the proxy, the same rbuild command on loopback, the HTTP requests one run makes
# (counted at the proxy) and the round trips the added time amounts to ((proxy - loopback) / RTT).
#
#   bench/latency.sh [--runs N] [--delay-ms 25] [--no-peer] [--cold-peer] [--scenarios LIST]
#
# --scenarios: a comma-separated subset of cold,warm-app,no-change (default: all three).
#
# As root (buildah), after the README's set-up command, with network access to PyPI. It builds
# target/release/rbuild, reuses the base fixture, starts its own registry
# (tests/fixtures/registry.sh) and the proxy, builds + pushes once with each tool into a saved
# state, and times each scenario with hyperfine, every run from the saved state (`--prepare`).
# The cold scenario of buildah (pip from PyPI, ~12 s a run) is timed only with --cold-peer.
#
# Environment: BENCH_WORK (state directory; default a new one under /var/tmp, removed at the end
# unless BENCH_KEEP=1), RBUILD_BIN (time this binary instead of building the checkout's).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/bench/latency.sh"
BENCH="$ROOT/bench"
log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

unmount_under() {
  local dir=$1 m
  while read -r m; do
    [[ -n "$m" ]] && umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir" '$2 ~ "^"d {print $2}' /proc/mounts | sort -r)
}

# prepare SCENARIO TOOL: the state one timed run starts from (registry storage, the tool's own
# storage, the app).
prepare() {
  local scenario=$1 tool=$2 snap part
  case $scenario in cold) snap=fixture ;; *) snap=warm ;; esac
  local parts=(reg app)
  case $tool in rbuild) parts+=(store) ;; buildah) parts+=(broot) ;; esac
  for part in "${parts[@]}"; do
    if [[ $part == broot ]]; then
      unmount_under "$WORK/broot"; unmount_under "$WORK/brun"; rm -rf "$WORK/brun"
    fi
    rm -rf "${WORK:?}/$part"
    if [[ -e "$WORK/snap/$snap/$part" ]]; then cp -a "$WORK/snap/$snap/$part" "$WORK/$part"; else mkdir -p "$WORK/$part"; fi
  done
  if [[ $scenario == warm-app ]]; then
    sed -i "s/^BUILD_MARK = .*/BUILD_MARK = \"$(date +%s%N)\"/" "$WORK/app/app/main.py"
  fi
  sync -f "$WORK" 2>/dev/null || true
}
if [[ "${1:-}" == __prepare ]]; then
  : "${WORK:?}"
  prepare "$2" "$3"
  exit 0
fi

RUNS=10
DELAY=25
PEER=1
COLD_PEER=0
SCENARIOS=cold,warm-app,no-change
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=$2; shift ;;
    --delay-ms) DELAY=$2; shift ;;
    --no-peer) PEER=0 ;;
    --cold-peer) COLD_PEER=1 ;;
    --scenarios) SCENARIOS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
for t in hyperfine skopeo docker-registry jq python3 cargo curl; do
  command -v "$t" >/dev/null || die "\`$t\` not found"
done
[[ $PEER == 0 ]] || command -v buildah >/dev/null || die "\`buildah\` not found (or pass --no-peer)"

WORK=${BENCH_WORK:-$(mktemp -d /var/tmp/rbuild-latency.XXXXXX)}
mkdir -p "$WORK/snap"
WORK=$(cd "$WORK" && pwd)
export WORK
REG_PID= PROXY_PID=
cleanup() {
  local rc=$?
  for p in $PROXY_PID $REG_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  unmount_under "$WORK"
  if [[ "${BENCH_KEEP:-0}" != 1 && -z "${BENCH_WORK:-}" ]]; then rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT

cd "$ROOT"
if [[ -n "${RBUILD_BIN:-}" ]]; then
  BIN=$(readlink -f "$RBUILD_BIN")
else
  log "building rbuild (release)"
  BIN=$(cargo build -q --release -p rbuild-cli --bin rbuild --message-format=json \
    | jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' | tail -n1)
fi
FIXTURE=$(tests/fixtures/base/build-base.sh | sed -n 's/^FIXTURE_DIR=//p' | tail -n1)
# shellcheck source=tests/fixtures/registry.sh
. "$ROOT/tests/fixtures/registry.sh"
start_registry "$WORK/registry.yml" "$WORK/reg" "$WORK/registry.log" || die "docker-registry did not start"
LHOST=$REGISTRY_HOST
REG_PID=$REGISTRY_PID
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$FIXTURE:3.11-slim" \
  "docker://$LHOST/library/python:3.11-slim"

PPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PHOST=127.0.0.1:$PPORT
python3 "$BENCH/latency-proxy.py" --listen "$PHOST" --upstream "$LHOST" --delay-ms "$DELAY" \
  --stats "$WORK/proxy.json" &
PROXY_PID=$!
for _ in $(seq 50); do curl -fsS -o /dev/null "http://$PHOST/v2/" 2>/dev/null && break; sleep 0.1; done
log "registry http://$LHOST, through the proxy (+$DELAY ms each way) http://$PHOST"

CA=/etc/ssl/certs/ca-certificates.crt
printf '[global]\ncert = %s\n' "$CA" >"$WORK/pip.conf"
PEER_MOUNTS=()
[[ -f $CA ]] && PEER_MOUNTS=(-v "$CA:$CA:ro" -v "$WORK/pip.conf:/etc/pip.conf:ro")

rbuild_cmd() { # HOST: one shell-quoted build + push of $WORK/app through HOST
  printf '%q ' env RBUILD_CACHE_DIR="$WORK/store" "$BIN" build --insecure-registry "$1" -q \
    --base "$1/library/python:3.11-slim" "$WORK/app" --to "$1/demo/app:latest"
}
buildah_cmd() {
  local b
  b=$(printf '%q ' buildah --root "$WORK/broot" --runroot "$WORK/brun" --storage-driver overlay)
  printf '%s' "$b"
  printf '%q ' build -q --isolation chroot --layers --tls-verify=false \
    --build-arg "BASE=$PHOST/library/python:3.11-slim" "${PEER_MOUNTS[@]}" -f "$BENCH/Dockerfile" \
    -t bench/app:latest "$WORK/app"
  printf '>/dev/null && %s' "$b"
  printf '%q ' push -q --tls-verify=false bench/app:latest "docker://$PHOST/peer/app:latest"
}

cp -a "$BENCH/app" "$WORK/app"
mkdir -p "$WORK/snap/fixture"
cp -a "$WORK/reg" "$WORK/app" "$WORK/snap/fixture/"
log "warm state: one build + push with each tool (through the proxy)"
eval "$(rbuild_cmd "$PHOST")" >/dev/null
[[ $PEER == 1 ]] && eval "$(buildah_cmd)" >/dev/null
unmount_under "$WORK/broot"
mkdir -p "$WORK/snap/warm"
for part in reg store broot app; do
  [[ -e "$WORK/$part" ]] && cp -a "$WORK/$part" "$WORK/snap/warm/"
done

# requests SCENARIO TOOL CMD: HTTP requests (and connections) of one untimed run at the proxy.
requests() {
  prepare "$1" "$2"
  kill -USR1 "$PROXY_PID"; sleep 0.2
  eval "$3" >/dev/null
  sleep 0.3
  jq -r '"\(.requests) \(.connections)"' "$WORK/proxy.json"
  cp "$WORK/proxy.json" "$WORK/requests-$1-$2.json"
}

ROWS=()
for scenario in ${SCENARIOS//,/ }; do
  case $scenario in cold|warm-app|no-change) ;; *) die "unknown scenario $scenario (cold, warm-app, no-change)" ;; esac
  cmds=(-n "rbuild $scenario (+${DELAY} ms each way)" --prepare "$SELF __prepare $scenario rbuild" "$(rbuild_cmd "$PHOST")"
    -n "rbuild $scenario (loopback)" --prepare "$SELF __prepare $scenario rbuild" "$(rbuild_cmd "$LHOST")")
  if [[ $PEER == 1 && ( $scenario != cold || $COLD_PEER == 1 ) ]]; then
    cmds+=(-n "buildah $scenario (+${DELAY} ms each way)" --prepare "$SELF __prepare $scenario buildah" "$(buildah_cmd)")
  fi
  runs=$RUNS
  [[ $scenario == cold ]] && runs=$(( RUNS < 3 ? RUNS : 3 ))
  log "$scenario: $runs runs"
  hyperfine --style basic --runs "$runs" --warmup 1 --export-json "$WORK/time-$scenario.json" "${cmds[@]}" >&2
  read -r rq rc <<<"$(requests "$scenario" rbuild "$(rbuild_cmd "$PHOST")")"
  bq=- bc=-
  if [[ $PEER == 1 && ( $scenario != cold || $COLD_PEER == 1 ) ]]; then
    read -r bq bc <<<"$(requests "$scenario" buildah "$(buildah_cmd)")"
  fi
  ROWS+=("$scenario $rq $rc $bq $bc")
done

printf '| scenario | rbuild (50 ms RTT) | rbuild (loopback) | added round trips | requests (connections) | buildah (50 ms RTT) | buildah requests | rbuild / buildah |\n|---|---|---|---|---|---|---|---|\n'
for row in "${ROWS[@]}"; do
  read -r scenario rq rc bq bc <<<"$row"
  python3 - "$WORK/time-$scenario.json" "$scenario" "$DELAY" "$rq" "$rc" "$bq" "$bc" <<'PY'
import json, sys
path, scenario, delay, rq, rc, bq, bc = sys.argv[1:8]
res = json.load(open(path))["results"]
def fmt(r):
    return f'{r["median"]*1000:.0f} ms ({r["min"]*1000:.0f}–{r["max"]*1000:.0f})'
far, loop = res[0], res[1]
peer = res[2] if len(res) > 2 else None
rtt = 2 * float(delay) / 1000
added = (far["median"] - loop["median"]) / rtt
print(f'| {scenario} | {fmt(far)} | {fmt(loop)} | {added:.1f} | {rq} ({rc}) | '
      f'{fmt(peer) if peer else "–"} | {bq if peer else "–"} | '
      f'{far["median"] / peer["median"]:.3f} |' if peer else
      f'| {scenario} | {fmt(far)} | {fmt(loop)} | {added:.1f} | {rq} ({rc}) | – | – | – |')
PY
done

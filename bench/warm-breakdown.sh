#!/usr/bin/env bash
# warm-app build + push (bench/app, one app line changed, 10 runs each) with the default
# bytecode and attachments, and with each turned off: where the warm-app time goes.
#
#   bench/warm-breakdown.sh    (as root, after the README set-up command; needs a release build:
#                               cargo build --release -p rbuild-cli)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd $ROOT
BIN=$ROOT/target/release/rbuild
WORK=$(mktemp -d /var/tmp/wb.XXXXXX); export WORK
FIXTURE=$(tests/fixtures/base/build-base.sh | sed -n 's/^FIXTURE_DIR=//p' | tail -n1)
. tests/fixtures/registry.sh
start_registry "$WORK/registry.yml" "$WORK/reg" "$WORK/registry.log"
trap 'kill $REGISTRY_PID' EXIT
HOST=$REGISTRY_HOST
BASE="$HOST/library/python:3.11-slim"
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$FIXTURE:3.11-slim" "docker://$BASE"
declare -A FL=([default]="" [nobc]="--no-compile-bytecode" [noattach]="--sbom none --no-provenance" [none]="--no-compile-bytecode --sbom none --no-provenance")
cat > $WORK/prep.sh <<'P'
#!/bin/bash
v=$1
rm -rf $WORK/app-$v $WORK/store-$v; cp -a $WORK/snap-app $WORK/app-$v; cp -a $WORK/snap-store-$v $WORK/store-$v
sed -i "s/^BUILD_MARK = .*/BUILD_MARK = \"$(date +%s%N)\"/" $WORK/app-$v/app/main.py
P
chmod +x $WORK/prep.sh
cp -a bench/app $WORK/snap-app
args=()
for v in default nobc noattach none; do
  cp -a $WORK/snap-app $WORK/app-$v
  RBUILD_CACHE_DIR=$WORK/snap-store-$v $BIN build --insecure-registry $HOST -q --base $BASE ${FL[$v]} $WORK/app-$v --to $HOST/wb/$v:latest >/dev/null
  args+=(--prepare "$WORK/prep.sh $v" -n "$v" "env RBUILD_CACHE_DIR=$WORK/store-$v $BIN build --insecure-registry $HOST -q --base $BASE ${FL[$v]} $WORK/app-$v --to $HOST/wb/$v:latest")
done
hyperfine --style basic --runs 10 --warmup 1 "${args[@]}" 2>&1 | grep -E '^Benchmark|Time \(mean|Range'
rm -rf $WORK

#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The daemon's main job on one machine, against local stand-ins for the outside world:
# installs what is needed, builds, starts a fake instance-metadata service (tests/fakes),
# starts kube2iam in front of it, shows what a pod sees, and stops everything.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=/usr/bin/python3

if [ "$(id -u)" -eq 0 ]; then ./scripts/install-deps.sh; else ./scripts/install-deps.sh || true; fi
if [ ! -f build/build.ninja ]; then meson setup build >/dev/null; fi
ninja -C build >/dev/null

WORK=$(mktemp -d /tmp/k2i-demo.XXXXXX)
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
IMDS_PORT=$(free_port)
APP_PORT=$(free_port)

echo "== Starting a fake instance-metadata service on 127.0.0.1:$IMDS_PORT (tests/fakes/fake_imds.py)"
$PY tests/fakes/fake_imds.py --port "$IMDS_PORT" >"$WORK/imds.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$IMDS_PORT/latest/meta-data/instance-id" >/dev/null && break; sleep 0.1; done

echo "== Starting kube2iam on 127.0.0.1:$APP_PORT"
./build/kube2iam --app-port="$APP_PORT" --listen-address=127.0.0.1 --metadata-addr="127.0.0.1:$IMDS_PORT" \
        --host-ip=127.0.0.1 --log-level=debug >"$WORK/kube2iam.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$APP_PORT/healthz" >/dev/null && break; sleep 0.1; done
sleep 0.3

show() { echo; echo "\$ curl $*"; curl -s -i "$@" | sed 's/^/    /'; echo; }
show "http://127.0.0.1:$APP_PORT/healthz"
show "http://127.0.0.1:$APP_PORT/latest/meta-data/instance-id"
show "http://127.0.0.1:$APP_PORT/latest//meta-data/local-ipv4"
show "http://127.0.0.1:$APP_PORT/latest/meta-data/iam/security-credentials/"

cat <<TEXT
What happened:
  - /healthz answered from the daemon's own state, with kube2iam's JSON shape.
  - instance-id was proxied to the (fake) upstream IMDS, path, query and Host kept.
  - a path with '//' was answered 301 with the cleaned Location, as kube2iam's router does.
  - the credential route is the daemon's own: pods never get the node's role from it.
The daemon's log (text format; under systemd it writes to the journal with fields):
TEXT
sed 's/^/    /' "$WORK/kube2iam.log"
kill -TERM "${pids[1]}"
wait "${pids[1]}" && echo "kube2iam stopped cleanly on SIGTERM (exit 0)."

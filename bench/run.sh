#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# kube2iam's benchmark, one command:
#
#     bench/run.sh [--quick] [--only load,proxy,callgrind,first,burst,scale,sts,start,restart]
#
# Builds a release build in build-bench/ (meson -Dbuildtype=release), then runs bench/bench.py,
# which starts everything it needs on loopback (the fakes of tests/fakes: IMDS, STS, API server;
# nginx with a config of its own in a temp dir, one worker; wrk; valgrind) and prints one table:
#   - cached credentials under load (wrk, 2 threads, 32 and 256 connections from 8 pods' loopback
#     addresses, keep-alive and a new connection per request) next to nginx serving the same bytes:
#     req/s, p50, p99, each server's CPU time per request, ratio;
#   - proxied requests next to nginx proxy_pass to the same upstream, and the upstream alone;
#   - instructions per cached credential request (callgrind, N requests, minus an idle run; kept
#     alive and a connection each), and the top functions per request (bench/results/callgrind-top.txt);
#   - the link-local budget: one pod floods a forwarded path; what reached the upstream per second;
#   - a new pod's first credential request from the ADDED event, prefetch on and off;
#   - a burst: 100 pods ADDED at once, each asking 200 ms later: p50/p99 and the STS calls;
#   - RSS, RssAnon and each library's resident share, and watch events/s with 110/250/1,000 pods
#     and 1,000/10,000/50,000 namespaces;
#   - STS calls per hour for 250 pods sharing 40 roles over a simulated day (bench/sts-day);
#   - exec to READY=1 with a 250-pod list;
#   - a restart, cold and warm (the fd store's snapshot): STS calls, exec to the first answer.
# The table also goes to bench/results/ (gitignored): latest.txt, latest.json, latest.svg (a chart per kind)
# and a timestamped copy. Every throughput is a ratio to a reference measured in the same run:
# machines here are shared and noisy. About 5 minutes on 2 cores; --quick is a 1-minute smoke run.
# Needs the packages of scripts/install-deps.sh (wrk, nginx-light, valgrind) and runs as any user.
set -eu
cd "$(dirname "$0")/.."
if [ ! -f build-bench/build.ninja ]; then
        meson setup build-bench -Dbuildtype=release >/dev/null
fi
ninja -C build-bench >/dev/null
exec /usr/bin/python3 bench/bench.py --build build-bench "$@"

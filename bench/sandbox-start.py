#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Where a warm restart's first answer goes under the real systemd 252 (docs/warm-restart.md,
"Where a restart's time goes"): boots the nspawn node of tests/nspawn (root, a .deb of HEAD or
$KUBE2IAM_DEB), then measures, interleaved so that the machine's load hits every variant alike:

  - systemd's fork of the main process to main() of a static probe (it prints CLOCK_MONOTONIC,
    so no journal timestamp is involved) under: no sandbox; the unit's sandbox without its mount
    lists (BindReadOnlyPaths=, InaccessiblePaths=, TemporaryFileSystem=); the unit's sandbox;
  - `systemctl restart kube2iam` while a pod asks back-to-back (no pause between requests): the
    first 200 after ExecMainStartTimestampMonotonic, when that request was sent, and the daemon's
    first journal line and "Listening" (the time the daemon sent them, _SOURCE_REALTIME_TIMESTAMP,
    beside the time journald received them); when PID 1 began the start (ExecStartPre= runs
    before the fork) and the pod's gap, from its last answer by the old process to its first by
    the new one.

    /usr/bin/python3 bench/sandbox-start.py [--runs 8] [--pod-mounts 150]

--pod-mounts N mounts N small tmpfs under /var/lib/kubelet/pods first, as kubelet mounts pods'
volumes on a busy node: systemd's namespace set-up reads the whole mount table once per entry of
the unit's mount lists, so it grows with them."""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "nspawn"))

from nspawn_helpers import POD_ROLE, Node, build_deb, rootfs_tarball  # noqa: E402
from test_node import LOOP_CLIENT, NOT_SANDBOX, PodClientLoop, served_role  # noqa: E402

PROBE_C = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
        struct timespec ts;
        int mounts = 0, c;
        FILE *f;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        f = fopen("/proc/self/mountinfo", "re");
        while (f && (c = fgetc(f)) != EOF)
                mounts += c == '\n';
        printf("PROBE main=%lld mounts=%d\n", (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000, mounts);
        return 0;
}
"""
MOUNT_LISTS = re.compile(r"(BindReadOnlyPaths|InaccessiblePaths|TemporaryFileSystem)=")
RESTART_WAIT = 30  # seconds


class BackToBack(PodClientLoop):
    """The tests' pod client loop without its pause between requests."""

    def __init__(self, node):
        self.dir = tempfile.mkdtemp(prefix="k2i-bench-loop-")
        self.stop_file = os.path.join(self.dir, "stop")
        self.results = []
        code = LOOP_CLIENT.replace("time.sleep(0.05)", "pass")
        assert code != LOOP_CLIENT
        self.proc = subprocess.Popen(["ip", "netns", "exec", node.ns_pod, "/usr/bin/python3", "-c", code,
                                      self.stop_file], stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()


def summary(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return "n/a"
    return f"{statistics.median(v):7.1f} ({v[0]:.1f}-{v[-1]:.1f}, n={len(v)})"


def install_probes(node):
    """Three oneshot units running the static probe: no sandbox, the sandbox without its mount
    lists, the unit's whole sandbox (its [Service] lines but what starts and restarts it)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(PROBE_C)
        subprocess.run(["cc", "-O2", "-static", "-o", str(node.root / "usr/local/sbin/k2i-start-probe"), str(src)],
                       check=True)
    unit = node.sh("systemctl cat kube2iam.service").stdout
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
    sandbox = [l for l in service.splitlines() if l.strip() and not l.startswith("#")
               and not l.startswith(NOT_SANDBOX + ("FileDescriptorStoreMax=",))]
    variants = {"no sandbox": [], "sandbox without mount lists": [l for l in sandbox if not MOUNT_LISTS.match(l)],
                "the unit's sandbox": sandbox}
    names = {}
    for i, (what, lines) in enumerate(variants.items()):
        names[what] = f"k2i-start-probe-{i}.service"
        text = ("[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
                "ExecStart=/usr/local/sbin/k2i-start-probe\n" + "\n".join(lines) + "\n")
        node.sh(f"cat >/run/systemd/system/{names[what]} <<'EOF'\n{text}EOF")
    node.sh("systemctl daemon-reload")
    return names


def probe_once(node, unit):
    node.sh(f"systemctl restart {unit}")
    p = node.show(unit, "ExecMainStartTimestampMonotonic", "InvocationID")
    out = node.sh(f"journalctl -o cat --no-pager _SYSTEMD_INVOCATION_ID={p['InvocationID']}").stdout
    m = re.search(r"PROBE main=(\d+) mounts=(\d+)", out)
    assert m, out
    return (int(m.group(1)) - int(p["ExecMainStartTimestampMonotonic"])) / 1000, int(m.group(2))


def journal_ms(node, pid, start):
    """The daemon's first journal line and "Listening on port": (sent, received), ms after start."""
    out = node.sh(f"journalctl -o json --no-pager _PID={pid}").stdout
    entries = [json.loads(l) for l in out.splitlines() if l.startswith("{")]

    def stamps(e):
        if e is None:
            return None, None
        mono, real = int(e["__MONOTONIC_TIMESTAMP"]), int(e["__REALTIME_TIMESTAMP"])
        sent = mono + int(e.get("_SOURCE_REALTIME_TIMESTAMP", real)) - real
        return (sent - start) / 1000, (mono - start) / 1000

    first = min(entries, key=lambda e: int(e["__MONOTONIC_TIMESTAMP"]), default=None)
    listening = next((e for e in entries if str(e.get("MESSAGE", "")).startswith("Listening on port")), None)
    return stamps(first), stamps(listening)


def pre_start_ms(node, start):
    """When PID 1 logged "Starting kube2iam.service" for this start (journald's reception time, ms
    before the fork of the main process: the stop's end and ExecStartPre= lie between)."""
    out = node.sh("journalctl -o json --no-pager _PID=1 -n 200").stdout
    starting = [int(e["__MONOTONIC_TIMESTAMP"]) for e in map(json.loads, filter(None, out.splitlines()))
                if str(e.get("MESSAGE", "")).startswith("Starting kube2iam.service")
                and int(e["__MONOTONIC_TIMESTAMP"]) <= start]
    return (max(starting) - start) / 1000 if starting else None


def restart_once(node):
    pid = node.show("kube2iam.service", "MainPID")
    loop = BackToBack(node)
    try:
        loop.wait_count(3)
        node.sh("systemctl restart kube2iam.service")
        deadline = time.monotonic() + RESTART_WAIT
        while True:
            now = node.show("kube2iam.service", "MainPID", "ActiveState")
            if now["ActiveState"] == "active" and now["MainPID"] not in ("0", pid):
                break
            assert time.monotonic() < deadline, now
            time.sleep(0.1)
        loop.wait_count(len(loop.results) + 5)
    finally:
        results = loop.finish()
    p = node.show("kube2iam.service", "ExecMainStartTimestampMonotonic", "MainPID", "StatusText")
    start = int(p["ExecMainStartTimestampMonotonic"])
    ok = [r for r in results if r.get("status") == 200 and r["end"] > start / 1e6]
    first = min(ok, key=lambda r: r["end"]) if ok else None
    (line, line_rx), (listening, _) = journal_ms(node, p["MainPID"], start)
    before = [r["end"] for r in results if r.get("status") == 200 and r["end"] <= start / 1e6]
    return {
        "pod's gap (last answer before to first after)": None if first is None or not before
        else (first["end"] - max(before)) * 1000,
        "ExecStartPre (kube2iam-nft install) began": pre_start_ms(node, start),
        "first answer": None if first is None else (first["end"] * 1e6 - start) / 1000,
        "its request sent": None if first is None else ((first["end"] - first["t"]) * 1e6 - start) / 1000,
        "first journal line (sent)": line,
        "first journal line (received)": line_rx,
        "listening (sent)": listening,
        "failed requests": len([r for r in results if r.get("status") != 200]),
        "warm": "warm start" in p["StatusText"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--pod-mounts", type=int, default=0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, systemd-nspawn)")
    work = Path(tempfile.mkdtemp(prefix="k2i-bench-start-", dir="/var/tmp"))
    node = None
    try:
        deb = build_deb(work)
        node = Node(work, rootfs_tarball(deb), deb)
        node.setup_network()
        node.prepare_rootfs()
        node.boot()
        assert served_role(node) == POD_ROLE
        if args.pod_mounts:
            node.sh(f"for i in $(seq {args.pod_mounts}); do d=/var/lib/kubelet/pods/bench-$i/volumes; "
                    "mkdir -p $d && mount -t tmpfs -o size=64k tmpfs $d; done")
        probes = install_probes(node)
        forks, mounts = {w: [] for w in probes}, {}
        for _ in range(args.runs):
            for what, unit in probes.items():
                ms, mounts[what] = probe_once(node, unit)
                forks[what].append(ms)
        restarts = [restart_once(node) for _ in range(args.runs)]
    finally:
        if node:
            node.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.runs} runs, {args.pod_mounts} extra mounts under /var/lib/kubelet/pods; "
          "median (min-max) ms after systemd forked the process")
    for what in forks:
        print(f"  fork -> main(), {what:28s} {summary(forks[what])}  [{mounts[what]} mounts in its namespace]")
    for key in restarts[0]:
        if key not in ("failed requests", "warm"):
            print(f"  restart: {key:48s} {summary([r[key] for r in restarts])}")
    print(f"  restart: failed requests {sum(r['failed requests'] for r in restarts)}, "
          f"warm {sum(r['warm'] for r in restarts)} of {len(restarts)}")


if __name__ == "__main__":
    main()

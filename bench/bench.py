#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""kube2iam's benchmark (issue 8): run through bench/run.sh, which builds build-bench first.

Everything runs on loopback against the fakes of tests/fakes (node_env.py: IMDS, STS, API server).
Machines are shared and noisy, so every throughput figure sits next to a reference measured in the
same run (nginx, one worker, serving the same bytes or proxying to the same upstream) and the CPU
cost is an instruction count (callgrind), not a time. Prints a table and writes it to
bench/results/ as text, JSON and an SVG chart.

    /usr/bin/python3 bench/bench.py --build build-bench [--quick] [--only load,callgrind,...]
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from fake_imds import MAC  # noqa: E402
from node_env import BASE_ARN, NodeEnv  # noqa: E402

_handle_error = socketserver.BaseServer.handle_error


def _quiet_handle_error(self, request, client_address):
    # wrk and nginx drop keep-alive connections to the Python fakes when a run ends: not news
    if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
        _handle_error(self, request, client_address)


socketserver.BaseServer.handle_error = _quiet_handle_error
# http.server writes a response's headers and body in two send()s: with Nagle on, the body waits
# for the client's delayed ACK (40 ms), which made every STS call of the fake look 45 ms long.
socketserver.StreamRequestHandler.disable_nagle_algorithm = True

# The load rows' clients: this many pods (127.0.0.1 ...), 32 connections each at 256 connections,
# well inside the per-address limit a single client address would hit (HTTP_MAX_CONNECTIONS_PER_IP).
LOAD_PODS = 8
SPREAD_SOURCE = None  # build-bench/bench/spread-source.so, set in main()
# Issue 15's targets, drawn on the chart: instructions per cached request, and the daemon-wide
# upstream IMDS bound after its burst (src/http/proxy.h).
CACHED_INSTRUCTIONS_BUDGET = 35000
LINK_LOCAL_BOUND = 64
SECTIONS = ["load", "proxy", "callgrind", "first", "burst", "scale", "sts", "start", "restart"]
CRED_ROLE = "bench-role"
CRED_PATH = "/latest/meta-data/iam/security-credentials/" + CRED_ROLE
PROXIED_PATH = "/latest/meta-data/instance-id"
# forwarded, not fixed: kept for its 1 s TTL, concurrent GETs share one upstream request
PROXIED_TTL_PATH = f"/latest/meta-data/network/interfaces/macs/{MAC}/subnet-id"
# Quiet, and fast to give up on unknown addresses (the first-request rows use fresh addresses).
DAEMON_FLAGS = ["--log-level=warning", "--backoff-max-elapsed-time=2s", "--backoff-max-interval=100ms",
                f"--base-role-arn={BASE_ARN}"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, source="127.0.0.1", timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Daemon:
    """kube2iam from the bench build, listening on a loopback port of its own."""

    def __init__(self, build, env, extra=(), prefix=(), notify_path=None, wait=True, timeout=30,
                 metadata_port=None):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="k2i-bench-", suffix=".log", delete=False)
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("AWS_") and k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
        e.pop("NOTIFY_SOCKET", None)
        e.pop("KUBE2IAM_ARGS", None)
        if notify_path:
            e["NOTIFY_SOCKET"] = notify_path
        args = env.daemon_args(*extra)
        if metadata_port:
            args = [x if not x.startswith("--metadata-addr=") else f"--metadata-addr=127.0.0.1:{metadata_port}"
                    for x in args]
        self.cmd = [*prefix, os.path.join(build, "kube2iam"), f"--app-port={self.port}",
                    "--listen-address=127.0.0.1", *DAEMON_FLAGS, *args]
        self.t_exec = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, env=e, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if wait:
            self.wait_synced(timeout)

    def wait_synced(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            try:
                st, body = get(self.port, "/healthz", timeout=2)
                if st == 200 and json.loads(body).get("cachesSynced"):
                    return
            except (OSError, ValueError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise RuntimeError("daemon not synced: %s\n%s" % (" ".join(self.cmd), self.output()[-3000:]))

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def memory(self):
        """VmRSS and RssAnon (private memory) in KiB, and the resident KiB of each mapped library."""
        out = {"libs": {}}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        lib = None
        with open(f"/proc/{self.proc.pid}/smaps") as f:
            for line in f:
                head = line.split()
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    lib = os.path.basename(head[5]) if len(head) > 5 and head[5].startswith("/") else None
                elif lib and head[0] == "Rss:":
                    out["libs"][lib] = out["libs"].get(lib, 0) + int(head[1])
        return out

    def output(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)


class Nginx:
    """One nginx worker with one loopback server per entry of servers: each serves files
    ({path: bytes}) and proxies everything else to proxy (a loopback port) with keep-alive
    upstream connections, as the daemon keeps its own; "log": True keeps that server's access
    log (requests(i, path) counts them)."""

    def __init__(self, servers):
        self.dir = tempfile.mkdtemp(prefix="k2i-bench-nginx-")
        os.chmod(self.dir, 0o755)
        self.ports = []
        blocks = []
        for i, srv in enumerate(servers):
            port = free_port()
            self.ports.append(port)
            www = os.path.join(self.dir, "www%d" % i)
            os.makedirs(www)
            os.chmod(www, 0o755)
            for path, body in srv.get("files", {}).items():
                fp = os.path.join(www, path.lstrip("/"))
                os.makedirs(os.path.dirname(fp), mode=0o755, exist_ok=True)
                with open(fp, "wb") as f:
                    f.write(body)
            if srv.get("proxy"):
                blocks.append(f"""    upstream up{i} {{ server 127.0.0.1:{srv["proxy"]}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location / {{ try_files $uri @up; }}
        location @up {{
            proxy_pass http://up{i};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
""")
            else:
                blocks.append(f"    server {{ listen 127.0.0.1:{port}; root {www}; }}\n")
            if srv.get("log"):
                blocks[-1] = blocks[-1].replace(f"root {www};", f"root {www}; access_log {self.dir}/access{i}.log;", 1)
        temps = "".join(f"    {k}_temp_path {self.dir}/{k};\n" for k in
                        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = f"""{user}worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
{temps}    access_log off;
    keepalive_requests 1000000;
    default_type application/json;
{"".join(blocks)}}}
"""
        conf_path = os.path.join(self.dir, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", conf_path, "-e", self.dir + "/error.log"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                get(self.ports[-1], "/", timeout=2)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start: " + open(self.dir + "/error.log").read())

    def worker_pid(self):
        """The one worker's pid (the master only waits), None when it cannot be told."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = f.read().split()
        except OSError:
            return None
        return int(kids[0]) if len(kids) == 1 else None

    def requests(self, i, path):
        try:
            with open(os.path.join(self.dir, "access%d.log" % i)) as f:
                return sum(1 for line in f if '"GET %s ' % path in line)
        except FileNotFoundError:
            return 0

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def metrics(port, names):
    out = {}
    for line in get(port, "/metrics")[1].decode().splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[name] = int(float(value))
    return out


def unit_us(v, unit):
    return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def wrk(url, conns, seconds, close=False, sources=0, pid=None):
    """wrk's figures; with sources, its connections come from that many loopback addresses
    (bench/spread-source.c), with pid, the CPU time that process spent per request (us)."""
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", url]
    env = dict(os.environ)
    if sources:
        env.update(LD_PRELOAD=SPREAD_SOURCE, K2I_BENCH_SOURCES=str(sources))
    script = None
    if close:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write('wrk.headers["Connection"] = "close"\n')
        script.close()
        cmd[1:1] = ["-s", script.name]
    cpu0 = cpu_ticks(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, env=env).stdout
    cpu1 = cpu_ticks(pid)
    if script:
        os.unlink(script.name)
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    m = re.search(r"(\d+) requests in", out)
    if pid and m and int(m.group(1)) > 0:
        res["cpu_us"] = (cpu1 - cpu0) * 1e6 / os.sysconf("SC_CLK_TCK") / int(m.group(1))
    for pct in ("50", "99"):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % pct, out)
        res["p" + pct] = unit_us(*m.groups()) if m else float("nan")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    return res


def cpu_ticks(pid):
    """User plus system CPU time of a process, in clock ticks (0 without a pid)."""
    if not pid:
        return 0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def median_run(runs):
    """The run with the median requests/s (its latencies come with it)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def restart_run(a, env, store, pods, with_snapshot):
    """One run of the daemon after a first one cached every pod's role: (ms from exec to the first
    pod's answer, STS calls the run made while every pod asked once, list requests it made)."""
    sys.path.insert(0, os.path.join(REPO, "tests", "pylib"))
    from k2i_testlib import Daemon as TestDaemon
    handoff, fds = store.handoff_env() if with_snapshot else ({}, [])
    handoff["RUNTIME_DIRECTORY"] = tempfile.mkdtemp(prefix="k2i-bench-run-")
    calls = len(env.sts.calls())
    lists = len(env.api.lists("pods")) + len(env.api.lists("namespaces"))
    t0 = time.monotonic()
    d = TestDaemon(env.daemon_args(*DAEMON_FLAGS), env=handoff, notify=store, wait=False, fds=fds)
    try:
        ip, role = pods[0]
        path = "/latest/meta-data/iam/security-credentials/" + role
        while True:
            try:
                if get(d.port, path, source=ip, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 60:
                raise RuntimeError("no answer after a restart:\n" + d.output()[-3000:])
            time.sleep(0.002)
        first = (time.monotonic() - t0) * 1e3
        for ip, role in pods:
            assert get(d.port, "/latest/meta-data/iam/security-credentials/" + role, source=ip)[0] == 200
        lists = len(env.api.lists("pods")) + len(env.api.lists("namespaces")) - lists
        return first, len(env.sts.calls()) - calls, lists
    finally:
        d.stop()
        shutil.rmtree(handoff["RUNTIME_DIRECTORY"], ignore_errors=True)


def section_restart(a, R):
    """A restart with 40 pods on 10 roles, cold (no snapshot: `systemctl stop; start`) and warm
    (the fd store's snapshot: restart, crash, upgrade), through a stand-in for PID 1's fd store."""
    sys.path.insert(0, os.path.join(REPO, "tests", "pylib"))
    from k2i_testlib import FdStore
    cold, warm = [], []
    for _ in range(a.trials):
        env, store = NodeEnv(), FdStore()
        try:
            pods = [("127.0.40.%d" % (i + 1), "restart-role-%d" % (i % 10)) for i in range(40)]
            for i, (ip, role) in enumerate(pods):
                env.add_pod(f"restart-{i}", ip, role=role)
            restart_run(a, env, store, pods, False)  # fills the cache, pushes the snapshot
            need = [role.encode() for _, role in pods]
            end = time.monotonic() + 30
            while not any(all(n in store.stored(fd) for n in need) for fd in store.snapshot()):
                if time.monotonic() > end:
                    raise RuntimeError("no snapshot with every role")
                time.sleep(0.05)
            cold.append(restart_run(a, env, store, pods, False))
            warm.append(restart_run(a, env, store, pods, True))
        finally:
            store.close()
            env.stop()
    R["restart"] = {"trials": a.trials, "pods": 40, "roles": 10,
                    "cold_first_ms": statistics.median(c[0] for c in cold),
                    "warm_first_ms": statistics.median(w[0] for w in warm),
                    "cold_sts": statistics.median(c[1] for c in cold),
                    "warm_sts": statistics.median(w[1] for w in warm),
                    "cold_lists": statistics.median(c[2] for c in cold),
                    "warm_lists": statistics.median(w[2] for w in warm)}


# ---------------------------------------------------------------------------------------------------

def section_load(a, R):
    """Cached credentials (keep-alive and a connection per request) and proxied requests, next to
    nginx in the same run. The upstream IMDS is an nginx worker serving the proxied path from a
    file (the Python fake behind it still answers the node-credential paths), so the proxy rows
    measure the proxies, not the Python fake."""
    env = NodeEnv()
    d = ref = up = None
    try:
        pods = ["127.0.0.%d" % (i + 1) for i in range(LOAD_PODS)]
        for i, ip in enumerate(pods):
            env.add_pod("bench" if i == 0 else f"bench-{i}", ip, role=CRED_ROLE)
        instance_id = get(env.imds.port, PROXIED_PATH)[1]
        subnet = get(env.imds.port, PROXIED_TTL_PATH)[1]
        # the same files and upstream behind two servers: the daemon's logs what reaches it, the
        # reference's (nginx proxy_pass, one upstream request per request) does not pay for a log
        files = {PROXIED_PATH: instance_id, PROXIED_TTL_PATH: subnet}
        up = Nginx([{"files": files, "proxy": env.imds.port, "log": True}, {"files": files, "proxy": env.imds.port}])
        d = Daemon(a.build, env, metadata_port=up.ports[0])
        st, body = get(d.port, CRED_PATH)
        assert st == 200, body
        for ip in pods:  # every pod's answer is the cached one, the same bytes
            assert get(d.port, CRED_PATH, source=ip) == (200, body)
        ref = Nginx([{"files": {CRED_PATH: body}}, {"proxy": up.ports[1]}])
        assert get(ref.ports[0], CRED_PATH)[1] == body
        secs = a.seconds
        rows = []

        def pair(url_k, url_n, conns, close=False, sources=0):
            # alternate the two, several rounds, and keep each one's median round: other tenants of
            # the machine come and go, and both sides should see the same weather
            ks, ns = [], []
            for _ in range(a.rounds):
                ks.append(wrk(url_k, conns, secs, close, sources, d.proc.pid))
                ns.append(wrk(url_n, conns, secs, close, sources, ref.worker_pid()))
            return median_run(ks), median_run(ns)

        if "load" in a.only:
            for close in (False, True):
                for conns in (32, 256):
                    k, n = pair(f"http://127.0.0.1:{d.port}{CRED_PATH}",
                                f"http://127.0.0.1:{ref.ports[0]}{CRED_PATH}", conns, close, LOAD_PODS)
                    rows.append({"what": "cached credentials, %s, %d conns" % (
                        "new conn per request" if close else "keep-alive", conns),
                        "k2i": k, "ref": n, "ref_name": "nginx (same bytes)", "ratio": k["rps"] / n["rps"]})
        if "proxy" in a.only:
            assert get(d.port, PROXIED_PATH) == (200, instance_id)
            assert get(ref.ports[1], PROXIED_PATH) == (200, instance_id)
            k, n = pair(f"http://127.0.0.1:{d.port}{PROXIED_PATH}",
                        f"http://127.0.0.1:{ref.ports[1]}{PROXIED_PATH}", 32)
            u = wrk(f"http://127.0.0.1:{up.ports[1]}{PROXIED_PATH}", 32, secs)
            rows.append({"what": "proxied (instance-id), keep-alive, 32 conns", "k2i": k, "ref": n,
                         "ref_name": "nginx proxy_pass", "ratio": k["rps"] / n["rps"]})
            # forwarded and not fixed: what reached the upstream while the daemon was measured
            assert get(d.port, PROXIED_TTL_PATH) == (200, subnet)
            ks, ns, sent = [], [], 0
            for _ in range(a.rounds):
                before = up.requests(0, PROXIED_TTL_PATH)
                ks.append(wrk(f"http://127.0.0.1:{d.port}{PROXIED_TTL_PATH}", 32, secs))
                sent += up.requests(0, PROXIED_TTL_PATH) - before
                ns.append(wrk(f"http://127.0.0.1:{ref.ports[1]}{PROXIED_TTL_PATH}", 32, secs))
            k, n = median_run(ks), median_run(ns)
            rows.append({"what": "proxied (subnet-id, 1 s TTL), keep-alive, 32 conns", "k2i": k, "ref": n,
                         "ref_name": "nginx proxy_pass", "ratio": k["rps"] / n["rps"]})
            R["proxied_ttl"] = {"path": PROXIED_TTL_PATH, "upstream": sent, "seconds": secs * a.rounds,
                                "requests": sum(x["rps"] for x in ks) * secs}
            rows.append({"what": "  the upstream alone (nginx, static), 32 conns", "k2i": u, "ref": None,
                         "ref_name": "", "ratio": k["rps"] / u["rps"]})
            # the link-local budget: a pod flooding a path that is forwarded every time
            flood = "/latest/meta-data/public-ipv4"  # never kept
            env.imds.reset()
            f = wrk(f"http://127.0.0.1:{d.port}{flood}", 32, secs)
            sent = len([q for q in env.imds.requests() if q["path"] == flood])
            R["budget"] = {"rps": f["rps"], "throttled": f["non2xx"], "seconds": secs,
                           "upstream": sent, "upstream_rps": sent / secs}
        out = d.output()
        R["load"] = rows
        R["load_log_lines"] = out.count("\n")
        R["load_conn_limit_lines"] = out.count("reached connection limit")
    finally:
        for x in (ref, up, d):
            if x:
                x.stop()
        env.stop()


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + path)


def callgrind_run(a, n, outdir, name, idle=0, path=CRED_PATH, close=False):
    env = NodeEnv()
    out = os.path.join(outdir, f"callgrind.{name}.out")
    d = up = None
    try:
        env.add_pod("bench", "127.0.0.1", role=CRED_ROLE)
        # the same upstream as the load rows: nginx for the proxied path, the fake IMDS behind it
        up = Nginx([{"files": {PROXIED_PATH: get(env.imds.port, PROXIED_PATH)[1]}, "proxy": env.imds.port}])
        d = Daemon(a.build, env, prefix=["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out],
                   timeout=120, metadata_port=up.ports[0])
        # warm: the prefetch has finished and the first request is served from the cache
        end = time.monotonic() + 60
        while get(d.port, CRED_PATH)[0] != 200 and time.monotonic() < end:
            time.sleep(0.1)
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60, source_address=("127.0.0.1", 0))
        c.connect()
        # count from here: startup, the list and the prefetch are not part of a request's cost
        subprocess.run(["callgrind_control", "--zero", str(d.proc.pid)], check=True, capture_output=True,
                       timeout=60)
        t0 = time.monotonic()
        for _ in range(n):
            if close:  # a connection per request, as a client that does not keep them alive
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60, source_address=("127.0.0.1", 0))
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            assert r.status == 200
        if n == 0:
            time.sleep(idle)
        c.close()
        took = time.monotonic() - t0
    finally:
        if d:
            d.stop()
        if up:
            up.stop()
        env.stop()
    return callgrind_total(out), took, out


def callgrind_self(path):
    """{function: instructions spent in the function itself} of one callgrind output."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S+)(?:\s+\[(.*)\])?\s*$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        where, obj = m.group(2), os.path.basename(m.group(3) or "")
        fn = where.split(":", 1)[1] if ":" in where else where
        # unnamed code: the library and the address ("'2" marks a recursion level)
        name = fn if not fn.startswith("0x") else "%s %#x" % (obj.split(".so")[0], int(fn.split("'")[0], 16))
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def callgrind_top(run, idle, n, per_request, count):
    """The functions with the most instructions of their own per request: the run with n requests
    minus the run without any (timers, watches, the start and the shutdown cost the same in both)."""
    a, b = callgrind_self(run), callgrind_self(idle)
    rows = sorted((((a.get(k, 0) - b.get(k, 0)) / n, k) for k in set(a) | set(b)), reverse=True)
    # callgrind_annotate gives the frames that were active when the counters were zeroed (main, the
    # loader's entry, libc's start) the whole window as their own: no real function costs that much
    rows = [r for r in rows if r[0] < 0.9 * per_request]
    return [{"function": k, "per_request": v} for v, k in rows[:count]]


def section_callgrind(a, R):
    outdir = a.results
    n = a.callgrind_n
    total, took, out = callgrind_run(a, n, outdir, "requests")
    # the same window with no request: timers, the watch connections, the shutdown
    base, _, base_out = callgrind_run(a, 0, outdir, "idle", idle=took)
    ptotal, _, pout = callgrind_run(a, n // 4, outdir, "proxied", path=PROXIED_PATH)
    ctotal, _, cout = callgrind_run(a, n // 4, outdir, "close", close=True)
    top = callgrind_top(out, base_out, n, (total - base) / n, 40)
    R["callgrind"] = {"n": n, "ir_total": total, "ir_idle": base, "per_request": (total - base) / n,
                      "proxied_n": n // 4, "proxied_per_request": (ptotal - base) / (n // 4),
                      "close_n": n // 4, "close_per_request": (ctotal - base) / (n // 4),
                      "out": os.path.relpath(out, REPO), "top": top,
                      "top_file": os.path.relpath(os.path.join(outdir, "callgrind-top.txt"), REPO)}
    inclusive = subprocess.run(["callgrind_annotate", "--inclusive=yes", out], capture_output=True,
                               text=True).stdout
    with open(os.path.join(outdir, "callgrind-top.txt"), "w") as f:
        f.write("instructions per cached credential request in the function itself (N=%d, minus the idle run)\n"
                % n)
        f.writelines("%10.0f  %s\n" % (t["per_request"], t["function"]) for t in top)
        f.write("\nwhole run, inclusive:\n" + "\n".join(inclusive.splitlines()[:60]) + "\n")
    os.unlink(base_out)
    os.unlink(pout)
    os.rename(cout, os.path.join(outdir, "callgrind.close.out"))


def first_request(a, prefetch, trials):
    """The watch event (the fake API server's ADDED) to the pod holding its credentials."""
    env = NodeEnv()
    d = None
    at_once, later = [], []
    try:
        env.sts.configure(delay=a.sts_delay)
        d = Daemon(a.build, env, extra=() if prefetch else ("--prefetch=false",))
        # the daemon's first STS call also fetches the node's own credentials: a boot cost, not a pod's
        env.add_pod("warm", "127.0.30.1", role="warm-role")
        assert get(d.port, "/latest/meta-data/iam/security-credentials/warm-role", source="127.0.30.1")[0] == 200
        for i in range(trials):
            ip = "127.0.%d.%d" % (10 + prefetch, 10 + i)
            t0 = time.monotonic()
            env.add_pod(f"first-{i}", ip, role=f"first-{prefetch}-{i}")
            st, body = get(d.port, f"/latest/meta-data/iam/security-credentials/first-{prefetch}-{i}",
                           source=ip)
            at_once.append((time.monotonic() - t0) * 1e3)
            assert st == 200, body
            # the app starts a moment after its pod is known (image pulled, process up)
            ip = "127.0.%d.%d" % (20 + prefetch, 10 + i)
            env.add_pod(f"later-{i}", ip, role=f"later-{prefetch}-{i}")
            time.sleep(a.app_start)
            t1 = time.monotonic()
            st, body = get(d.port, f"/latest/meta-data/iam/security-credentials/later-{prefetch}-{i}",
                           source=ip)
            later.append((time.monotonic() - t1) * 1e3)
            assert st == 200, body
    finally:
        if d:
            d.stop()
        env.stop()
    return statistics.median(at_once), statistics.median(later)


def section_first(a, R):
    on = first_request(a, True, a.trials)
    off = first_request(a, False, a.trials)
    R["first"] = {"prefetch_at_once_ms": on[0], "noprefetch_at_once_ms": off[0],
                  "prefetch_later_ms": on[1], "noprefetch_later_ms": off[1], "trials": a.trials,
                  "sts_delay_ms": a.sts_delay * 1e3, "app_start_ms": a.app_start * 1e3}


def section_burst(a, R):
    """100 pods appear in one burst (a node filling up); each app asks for its credentials 200 ms
    after its ADDED event: those first requests' p50/p99, and the STS calls they cost."""
    n, roles, delay = 100, 20, 0.2
    env = NodeEnv()
    d = None
    try:
        env.sts.configure(delay=a.sts_delay)
        d = Daemon(a.build, env)
        env.add_pod("warm", "127.0.30.1", role="warm-role")
        assert get(d.port, "/latest/meta-data/iam/security-credentials/warm-role", source="127.0.30.1")[0] == 200
        before = len(env.sts.calls())
        lat, errs = [], []

        def ask(i, added):
            time.sleep(max(0.0, added + delay - time.monotonic()))
            t = time.monotonic()
            st, _ = get(d.port, f"/latest/meta-data/iam/security-credentials/burst-{i % roles}",
                        source="127.0.40.%d" % (i + 1))
            lat.append((time.monotonic() - t) * 1e3)
            if st != 200:
                errs.append(st)

        threads = []
        for i in range(n):
            env.add_pod(f"burst-{i}", "127.0.40.%d" % (i + 1), role=f"burst-{i % roles}")
            threads.append(threading.Thread(target=ask, args=(i, time.monotonic())))
            threads[-1].start()
        for t in threads:
            t.join()
        lat.sort()
        R["burst"] = {"pods": n, "roles": roles, "delay_ms": delay * 1e3, "p50_ms": lat[len(lat) // 2],
                      "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "errors": len(errs),
                      "sts_calls": len(env.sts.calls()) - before, "sts_delay_ms": a.sts_delay * 1e3}
    finally:
        if d:
            d.stop()
        env.stop()


# Issue 15's memory target: the daemon's private memory with 250 pods and 10,000 namespaces.
RSS_ANON_TARGET = {(250, 10000): 4096}


def daemon_idle_memory(a):
    """The daemon's memory with an empty cluster (no pods, no namespaces), once listed."""
    env = NodeEnv(namespaces=())
    d = None
    try:
        d = Daemon(a.build, env, extra=("--prefetch=false",))
        want = {"kube2iam_pods_known": 0, "kube2iam_namespaces_known": 0}
        end = time.monotonic() + 60
        while metrics(d.port, want) != want and time.monotonic() < end:
            time.sleep(0.05)
        return d.memory()
    finally:
        if d:
            d.stop()
        env.stop()


def section_scale(a, R):
    spec = importlib.util.spec_from_file_location("kube_watch_bench", os.path.join(REPO, "bench", "kube-watch.py"))
    kw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kw)
    R["idle_memory"] = daemon_idle_memory(a)
    rows = []
    for pods, nss in a.scale:
        # the daemon itself: RSS once the pods and namespaces are listed
        env = NodeEnv(namespaces=())
        d = None
        try:
            for i in range(pods):
                env.add_pod(f"pod-{i}", "10.%d.%d.%d" % (1 + i // 65536, (i // 256) % 256, i % 256),
                            role=f"role-{i % 40}", namespace=f"ns-{i % nss}")
            env.api.add_namespaces_bulk(f"ns-{i}" for i in range(nss))
            t0 = time.monotonic()
            # no STS traffic: this row is about the store, not 250 prefetches
            d = Daemon(a.build, env, extra=("--prefetch=false",), timeout=180)
            want = {"kube2iam_pods_known": pods, "kube2iam_namespaces_known": nss}
            end = time.monotonic() + 180
            while metrics(d.port, want) != want:
                if time.monotonic() > end:
                    raise RuntimeError("daemon did not list %r: %r" % (want, metrics(d.port, want)))
                time.sleep(0.05)
            sync = time.monotonic() - t0
            rss = d.rss_kb()
            mem = d.memory()
        finally:
            if d:
                d.stop()
            env.stop()
        m = kw.measure(pods, nss, a.events)
        rows.append({"pods": pods, "namespaces": nss, "daemon_rss_kb": rss, "daemon_sync_s": sync,
                     "daemon_rss_anon_kb": mem.get("RssAnon", 0), "daemon_libs_kb": mem["libs"], **m})
    R["scale"] = rows


def section_sts(a, R):
    tool = os.path.join(a.build, "bench", "sts-day")
    if not os.path.exists(tool):
        R["sts"] = {"missing": "build-bench/bench/sts-day not built: meson.build lacks subdir('bench')"}
        return
    runs = {}
    # the last run: --session-tags with kubernetes-pod-uid, one session per pod (docs/sessions.md)
    for name, ttl, extra in (("30m", "30m", []), ("15m", "15m", []), ("30m, pod tags", "30m", ["--pod-tags"])):
        r = subprocess.run([tool, "--pods=250", "--roles=40", "--hours=24", f"--session-ttl={ttl}", *extra],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("sts-day failed: " + r.stderr)
        runs[name] = json.loads(r.stdout)
    R["sts"] = runs


def section_start(a, R):
    try:  # main moved the test helpers to tests/pylib
        sys.path.insert(0, os.path.join(REPO, "tests", "pylib"))
        from k2i_testlib import NotifySocket
    except ImportError:
        from conftest import NotifySocket

    def one(pods):
        env = NodeEnv()
        n = NotifySocket()
        d = None
        try:
            for i in range(pods):
                env.add_pod(f"pod-{i}", "10.2.%d.%d" % (i // 250, i % 250 + 1), role=f"role-{i % 40}")
            d = Daemon(a.build, env, notify_path=n.path, wait=False)
            ready = n.wait_for("READY=1", timeout=60)
            took = time.monotonic() - d.t_exec
            if not ready:
                raise RuntimeError("no READY=1:\n" + d.output()[-3000:])
            return took * 1e3
        finally:
            if d:
                d.stop()
            n.close()
            env.stop()

    with_pods = statistics.median(one(250) for _ in range(a.trials))
    empty = statistics.median(one(0) for _ in range(a.trials))
    R["start"] = {"pods250_ms": with_pods, "pods0_ms": empty, "trials": a.trials}


# ---------------------------------------------------------------------------------------------------

def fmt_us(us):
    return "%.2f ms" % (us / 1e3) if us >= 1000 else "%.0f us" % us


def table(R):
    L = []
    L.append("kube2iam bench  %s  (%s, %d CPUs; loopback; fakes from tests/fakes)" % (
        R["when"], R["build"], os.cpu_count()))
    if R.get("load"):
        L.append("")
        L.append("%-52s %10s %9s %9s %7s %5s | %10s %9s %9s %7s | %6s" % (
            "throughput", "k2i req/s", "p50", "p99", "cpu/req", "errs", "ref req/s", "p50", "p99", "cpu/req",
            "ratio"))

        def cpu(r):
            return "%5.1f us" % r["cpu_us"] if r.get("cpu_us") else "%8s" % "-"

        for row in R["load"]:
            k, n = row["k2i"], row["ref"]
            ref = ("%10.0f %9s %9s %7s" % (n["rps"], fmt_us(n["p50"]), fmt_us(n["p99"]), cpu(n))) if n else "%38s" % ""
            L.append("%-52s %10.0f %9s %9s %7s %5d | %s | %5.2fx" % (
                row["what"], k["rps"], fmt_us(k["p50"]), fmt_us(k["p99"]), cpu(k), k["errors"] + k["non2xx"], ref,
                row["ratio"]))
        L.append("  wrk -t2, %d s per run, %d alternating rounds per row, median round shown" % (
            R["seconds"], R["rounds"]))
        L.append("  ref: nginx 1.22, one worker, same bytes from a file; proxied: nginx proxy_pass (upstream "
                 "keep-alive) to the same upstream; last row's ratio: k2i proxied / upstream alone")
        t = R.get("proxied_ttl")
        if t:
            L.append("proxied subnet-id: the upstream saw %d requests in %d s of kube2iam runs (~%.0f requests "
                     "answered; nginx proxy_pass sends one per request)" % (t["upstream"], t["seconds"], t["requests"]))
        b = R.get("budget")
        if b:
            L.append("link-local budget: one pod floods public-ipv4 (never kept, shared while in flight), 32 conns, %d s: "
                     "%.0f req/s answered, %d answered 429; upstream saw %d = %.1f req/s (bound: %d/s "
                     "daemon-wide after a burst of %d, %d/s per pod after %d)" % (
                         b["seconds"], b["rps"], b["throttled"], b["upstream"], b["upstream_rps"], 64, 256, 16, 128))
        L.append("  cached rows: the connections come from %d pods' addresses (127.0.0.1-%d, bench/spread-source.c), "
                 "32 each at 256 conns, inside the per-address limit (HTTP_MAX_CONNECTIONS_PER_IP, 128); proxied "
                 "rows from 127.0.0.1" % (LOAD_PODS, LOAD_PODS))
        L.append("  errs: wrk socket errors + non-2xx; cpu/req: the server process's user+system CPU time per "
                 "request (k2i: the daemon, ref: nginx's worker), steadier than req/s on a shared machine")
        if R.get("load_conn_limit_lines"):
            L.append("  daemon log: %d lines, %d of them MHD's \"reached connection limit\" (per-address "
                     "limit %d)" % (R["load_log_lines"], R["load_conn_limit_lines"], 128))
    c = R.get("callgrind")
    if c:
        L.append("")
        L.append("instructions per cached credential request (callgrind, keep-alive, N=%d): %.0f" % (
            c["n"], c["per_request"]))
        L.append("  (%d total - %d idle baseline) / %d; top functions: %s" % (
            c["ir_total"], c["ir_idle"], c["n"], c.get("top_file", "bench/results/callgrind-top.txt")))
        L.append("instructions per proxied request (instance-id, keep-alive, N=%d): %.0f" % (
            c["proxied_n"], c["proxied_per_request"]))
        if c.get("close_per_request"):
            L.append("instructions per cached credential request, a new connection each (N=%d): %.0f" % (
                c["close_n"], c["close_per_request"]))
        if c.get("top"):
            L.append("  top 10, instructions of their own per cached request: " + ", ".join(
                "%s %.0f" % (t["function"], t["per_request"]) for t in c["top"][:10]))
    f = R.get("first")
    if f:
        L.append("")
        L.append("new pod's first credential request (median of %d; fake STS answers after %.0f ms)" % (
            f["trials"], f["sts_delay_ms"]))
        L.append("  %-58s %8.1f ms  prefetch off %8.1f ms  ratio %.2f" % (
            "ADDED event -> credentials in hand (client asks at once):", f["prefetch_at_once_ms"],
            f["noprefetch_at_once_ms"], f["prefetch_at_once_ms"] / f["noprefetch_at_once_ms"]))
        L.append("  %-58s %8.1f ms  prefetch off %8.1f ms  ratio %.2f" % (
            "request latency when the app asks %.0f ms after ADDED:" % f["app_start_ms"],
            f["prefetch_later_ms"], f["noprefetch_later_ms"],
            f["prefetch_later_ms"] / f["noprefetch_later_ms"]))
    if R.get("scale"):
        L.append("")
        L.append("%-24s %14s %10s %14s %16s %14s" % ("scale (pods/namespaces)", "daemon RSS", "list+sync",
                                                      "kube-watch RSS", "watch events/s", "RSS after ev."))
        for s in R["scale"]:
            L.append("%-24s %11d KiB %8.2f s %11d KiB %16.0f %11d KiB" % (
                "%d / %d" % (s["pods"], s["namespaces"]), s["daemon_rss_kb"], s["daemon_sync_s"],
                s["rss_synced_kb"], s["events_per_s"], s["rss_after_kb"]))
        for s in R["scale"]:
            libs = sorted(s.get("daemon_libs_kb", {}).items(), key=lambda kv: -kv[1])[:6]
            target = RSS_ANON_TARGET.get((s["pods"], s["namespaces"]))
            verdict = "" if not target else " [target <= %d KiB: %s]" % (
                target, "met" if s.get("daemon_rss_anon_kb", 0) <= target else "NOT MET")
            L.append("  daemon %d / %d: RssAnon (private) %d KiB%s of VmRSS %d KiB; resident per file: %s" % (
                s["pods"], s["namespaces"], s.get("daemon_rss_anon_kb", 0), verdict, s["daemon_rss_kb"],
                ", ".join("%s %d" % kv for kv in libs)))
        idle = R.get("idle_memory")
        if idle:
            L.append("  daemon idle (empty cluster, listed): RssAnon %d KiB of VmRSS %d KiB" % (
                idle.get("RssAnon", 0), idle.get("VmRSS", 0)))
        L.append("  kube-watch: the daemon's Kubernetes half alone (tests/tools); events: %d pod updates in one "
                 "burst, rate measured inside the client; empty-cluster RSS %d KiB" % (
                     R["scale"][0]["events"], R["scale"][0]["rss_empty_kb"]))
    b = R.get("burst")
    if b:
        L.append("")
        L.append("burst: %d pods ADDED at once (%d roles), each asks %.0f ms after its ADDED: p50 %.1f ms, p99 %.1f ms, "
                 "%d errors; %d STS calls (fake STS answers after %.0f ms)" % (
                     b["pods"], b["roles"], b["delay_ms"], b["p50_ms"], b["p99_ms"], b["errors"], b["sts_calls"],
                     b["sts_delay_ms"]))
    s = R.get("sts")
    if s:
        L.append("")
        if "missing" in s:
            L.append("STS calls per hour: " + s["missing"])
        else:
            for ttl, r in s.items():
                L.append("STS calls/hour, %d pods sharing %d roles, simulated %d h, --iam-role-session-ttl=%s: "
                         "%.1f (%.2f per role per hour; %d requests from cache, %d waited)" % (
                             r["pods"], r["roles"], r["hours"], ttl, r["sts_calls_per_hour"],
                             r["per_role_per_hour"], r["requests_served_from_cache"], r["requests_waited"]))
    st = R.get("start")
    if st:
        L.append("")
        L.append("start, exec -> READY=1 (median of %d): %.0f ms with a 250-pod list, %.0f ms with none "
                 "(ratio %.2f)" % (st["trials"], st["pods250_ms"], st["pods0_ms"], st["pods250_ms"] / st["pods0_ms"]))
    rs = R.get("restart")
    if rs:
        L.append("")
        L.append("restart with %d pods on %d roles (median of %d): cold %.0f STS calls, %.0f list requests, "
                 "first answer %.0f ms after exec; warm (fd store snapshot) %.0f STS calls, %.0f list requests, "
                 "first answer %.0f ms" % (
                     rs["pods"], rs["roles"], rs["trials"], rs["cold_sts"], rs["cold_lists"], rs["cold_first_ms"],
                     rs["warm_sts"], rs["warm_lists"], rs["warm_first_ms"]))
    L.append("")
    L.append("bench wall time: %.0f s" % R["wall_s"])
    return "\n".join(L) + "\n"


K2I_COLOUR, REF_COLOUR, MARK_COLOUR = "#2b6cb0", "#a0aec0", "#c53030"


def svg_escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_panel(title, bars, unit, mark=None):
    """One chart: a title, horizontal bars [(label, value, colour, note)] on one scale, and an
    optional vertical mark (value, label): a target or a bound. Returns (svg lines, height)."""
    W, left, bar_h = 900, 330, 16
    peak = max([b[1] for b in bars] + [mark[0] if mark else 0]) or 1
    scale = (W - left - 190) / peak
    out = [f'<text x="10" y="20" font-size="14" font-weight="bold">{svg_escape(title)}</text>']
    y = 30
    for label, value, colour, note in bars:
        w = max(1.0, value * scale)
        out.append(f'<text x="10" y="{y + 12}">{svg_escape(label[:52])}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.0f}" height="{bar_h}" fill="{colour}"/>')
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
        out.append(f'<text x="{left + w + 4:.0f}" y="{y + 12}">{shown}{" " if unit else ""}{svg_escape(unit)}'
                   f'{svg_escape(note)}</text>')
        y += bar_h + 4
    if mark:
        x = left + mark[0] * scale
        out.append(f'<line x1="{x:.0f}" y1="28" x2="{x:.0f}" y2="{y}" stroke="{MARK_COLOUR}" '
                   f'stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 3:.0f}" y="{y + 12}" fill="{MARK_COLOUR}">{svg_escape(mark[1])}</text>')
        y += 16
    return out, y + 12


def svg_panels(R):
    """A chart per kind of row the table has: (title, bars, unit, mark)."""
    P = []
    load = [r for r in R.get("load", []) if r["ref"]]
    if load:
        bars = []
        for r in load:
            bars.append((r["what"], r["k2i"]["rps"], K2I_COLOUR, "  (%.2fx)" % r["ratio"]))
            bars.append(("  " + r["ref_name"], r["ref"]["rps"], REF_COLOUR, ""))
        P.append(("Throughput: kube2iam (blue) and its reference (grey) in the same run", bars, "req/s", None))
        P.append(("Ratio to the reference (target: 1.0x or more)",
                  [(r["what"], r["ratio"], K2I_COLOUR, "x") for r in load], "", (1.0, "1.0x")))
    c = R.get("callgrind")
    if c:
        bars = [("cached credentials, keep-alive", c["per_request"], K2I_COLOUR, "")]
        if c.get("close_per_request"):
            bars.append(("cached credentials, a connection each", c["close_per_request"], K2I_COLOUR, ""))
        bars.append(("proxied (instance-id), keep-alive", c["proxied_per_request"], K2I_COLOUR, ""))
        budget = (CACHED_INSTRUCTIONS_BUDGET, "cached budget %dk" % (CACHED_INSTRUCTIONS_BUDGET // 1000))
        P.append(("Instructions per request (callgrind)", bars, "", budget))
    b = R.get("budget")
    if b:
        P.append(("Link-local budget: one pod floods a forwarded path",
                  [("answered to the pod", b["rps"], K2I_COLOUR, ""),
                   ("sent to the real IMDS", b["upstream_rps"], REF_COLOUR, "")], "req/s",
                  (LINK_LOCAL_BOUND, "bound %d/s" % LINK_LOCAL_BOUND)))
    f = R.get("first")
    if f:
        P.append(("A new pod's first credential request (from its ADDED event)",
                  [("asks at once, prefetch on", f["prefetch_at_once_ms"], K2I_COLOUR, ""),
                   ("asks at once, prefetch off", f["noprefetch_at_once_ms"], REF_COLOUR, ""),
                   ("asks %.0f ms later, prefetch on" % f["app_start_ms"], f["prefetch_later_ms"], K2I_COLOUR, ""),
                   ("asks %.0f ms later, prefetch off" % f["app_start_ms"], f["noprefetch_later_ms"], REF_COLOUR,
                    "")], "ms", None))
    bu = R.get("burst")
    if bu:
        P.append(("Burst: %d pods ADDED at once, each asks %.0f ms later (%d STS calls, %d roles)" % (
            bu["pods"], bu["delay_ms"], bu["sts_calls"], bu["roles"]),
            [("first requests p50", bu["p50_ms"], K2I_COLOUR, ""),
             ("first requests p99", bu["p99_ms"], K2I_COLOUR, "")],
            "ms", None))
    if R.get("scale"):
        bars = []
        idle = R.get("idle_memory")
        if idle:
            bars.append(("idle (empty cluster): RssAnon", idle.get("RssAnon", 0) / 1024, K2I_COLOUR, ""))
            bars.append(("idle (empty cluster): VmRSS", idle.get("VmRSS", 0) / 1024, REF_COLOUR, ""))
        for sc in R["scale"]:
            name = "%d pods / %d namespaces" % (sc["pods"], sc["namespaces"])
            bars.append((name + ": RssAnon", sc.get("daemon_rss_anon_kb", 0) / 1024, K2I_COLOUR, ""))
            bars.append((name + ": VmRSS", sc["daemon_rss_kb"] / 1024, REF_COLOUR, ""))
        target = max(RSS_ANON_TARGET.values()) / 1024
        P.append(("Memory: private (RssAnon) and resident (VmRSS)", bars, "MiB",
                  (target, "%g MiB private (250 pods / 10,000 namespaces)" % target)))
        P.append(("Watch events applied per second (kube-watch)",
                  [("%d pods / %d namespaces" % (sc["pods"], sc["namespaces"]), sc["events_per_s"], K2I_COLOUR, "")
                   for sc in R["scale"]], "events/s", None))
    st = R.get("sts")
    if st and "missing" not in st:
        P.append(("STS calls per role per hour (simulated day)",
                  [("--iam-role-session-ttl=" + ttl, r["per_role_per_hour"], K2I_COLOUR, "")
                   for ttl, r in st.items()], "", None))
    sa = R.get("start")
    if sa:
        P.append(("Start: exec to READY=1",
                  [("250 pods listed", sa["pods250_ms"], K2I_COLOUR, ""), ("no pods", sa["pods0_ms"], REF_COLOUR, "")],
                  "ms", None))
    rs = R.get("restart")
    if rs:
        P.append(("Restart with %d pods on %d roles: first answer after exec (STS calls)" % (rs["pods"], rs["roles"]),
                  [("warm (fd store snapshot)", rs["warm_first_ms"], K2I_COLOUR, "  (%d STS)" % rs["warm_sts"]),
                   ("cold", rs["cold_first_ms"], REF_COLOUR, "  (%d STS)" % rs["cold_sts"])], "ms", None))
    return P


def svg_chart(R):
    """Every kind of row in one SVG, one chart per kind, stacked."""
    panels = svg_panels(R)
    if not panels:
        return None
    W, y, body = 900, 34, []
    for title, bars, unit, mark in panels:
        lines, h = svg_panel(title, bars, unit, mark)
        body.append(f'<g transform="translate(0,{y})">')
        body.extend(lines)
        body.append("</g>")
        y += h
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" font-family="sans-serif" '
            f'font-size="12">', f'<rect width="{W}" height="{y}" fill="white"/>',
            f'<text x="10" y="20" font-size="15">kube2iam bench, {svg_escape(R["when"])} '
            f'({svg_escape(R["build"])}{", --quick" if R.get("quick") else ""})</text>']
    return "\n".join(head + body + ["</svg>"]) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build-bench"))
    ap.add_argument("--results", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer trials (a smoke test)")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    global SPREAD_SOURCE
    SPREAD_SOURCE = os.path.join(a.build, "bench", "spread-source.so")
    a.only = a.only.split(",")
    a.seconds = 2 if a.quick else 5
    a.rounds = 1 if a.quick else 3
    a.callgrind_n = 200 if a.quick else 2000
    a.trials = 2 if a.quick else 5
    a.events = 2000 if a.quick else 20000
    a.scale = [(110, 1000), (250, 10000), (1000, 50000)] if not a.quick else [(110, 1000), (250, 10000)]
    a.sts_delay = 0.05  # a regional STS round trip
    a.app_start = 0.5
    os.makedirs(a.results, exist_ok=True)
    os.environ["KUBE2IAM_BUILD_DIR"] = a.build  # kube-watch.py's tool

    R = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "build": os.path.relpath(a.build, REPO),
         "seconds": a.seconds, "rounds": a.rounds, "quick": a.quick}
    t0 = time.monotonic()
    for name, fn in (("load", section_load), ("callgrind", section_callgrind), ("first", section_first),
                     ("burst", section_burst), ("scale", section_scale), ("sts", section_sts), ("start", section_start),
                     ("restart", section_restart)):
        if name in a.only or (name == "load" and "proxy" in a.only):
            ts = time.monotonic()
            print("bench: %s..." % name, file=sys.stderr, flush=True)
            fn(a, R)
            print("bench: %s done in %.0f s" % (name, time.monotonic() - ts), file=sys.stderr, flush=True)
    R["wall_s"] = time.monotonic() - t0

    text = table(R)
    sys.stdout.write(text)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for name, data in ((f"bench-{stamp}.txt", text), ("latest.txt", text),
                       ("latest.json", json.dumps(R, indent=1, default=str) + "\n")):
        with open(os.path.join(a.results, name), "w") as f:
            f.write(data)
    svg = svg_chart(R)
    if svg:
        with open(os.path.join(a.results, "latest.svg"), "w") as f:
            f.write(svg)
    print("written: %s/{latest.txt,latest.json,latest.svg,bench-%s.txt}" % (
        os.path.relpath(a.results, REPO), stamp))


if __name__ == "__main__":
    main()

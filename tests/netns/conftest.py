# SPDX-License-Identifier: BSD-3-Clause
"""Fixtures of the netns suite: network namespaces (a "node" and its "pods") made and removed
by each test, the helper run inside them, and the ruleset read back with nft.

Needs root, iproute2 and nftables (scripts/install-deps.sh). Every namespace, veth and
process has a name unique to this run and is removed in a finalizer; the host's own ruleset
is never touched."""

import json
import os
import shutil
import subprocess
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    return os.environ.get("KUBE2IAM_BUILD_DIR", os.path.join(REPO, "build"))


def helper_path():
    path = os.path.join(build_dir(), "kube2iam-nft")
    if not os.path.exists(path):
        pytest.fail(f"{path} not built (set KUBE2IAM_BUILD_DIR or run meson/ninja)")
    return path


def pytest_collection_modifyitems(config, items):
    why = None
    if os.geteuid() != 0:
        why = "the netns suite needs root"
    elif not shutil.which("ip") or not shutil.which("nft"):
        why = "the netns suite needs iproute2 and nftables (scripts/install-deps.sh)"
    if why:
        for item in items:
            if "tests/netns" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=why))


def run(*args, check=True, timeout=60, **kw):
    return subprocess.run(list(args), check=check, timeout=timeout, capture_output=True, text=True, **kw)


def unique(prefix):
    """A short unique name: interface names allow 15 characters."""
    return prefix + uuid.uuid4().hex[:8]


class Netns:
    """One network namespace with loopback up."""

    def __init__(self, prefix="k2i-"):
        self.name = unique(prefix)
        run("ip", "netns", "add", self.name)
        run("ip", "-n", self.name, "link", "set", "lo", "up")

    def exec(self, *args, check=False, timeout=60, **kw):
        return run("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout, **kw)

    def popen(self, *args, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], **kw)

    def helper(self, *args, drop_net_admin=False, timeout=60):
        """kube2iam-nft ARGS inside the namespace (flags first, the command last)."""
        cmd = [helper_path(), *args]
        if drop_net_admin:
            # setpriv is in util-linux (essential); dropping the capability from the bounding
            # set leaves root without it after exec
            cmd = ["setpriv", "--bounding-set=-net_admin", "--", *cmd]
        return self.exec(*cmd, timeout=timeout)

    def nft(self, *args):
        return self.exec("nft", *args, check=True)

    def ruleset(self):
        """`nft -j list ruleset` without metainfo and handles: what an operator compares."""
        out = json.loads(self.nft("-j", "list", "ruleset").stdout)
        items = []
        for entry in out["nftables"]:
            if "metainfo" in entry:
                continue
            for obj in entry.values():
                obj.pop("handle", None)
            items.append(entry)
        return items

    def handles(self, family, table, chain):
        out = json.loads(self.nft("-j", "-a", "list", "chain", family, table, chain).stdout)
        return [e["rule"]["handle"] for e in out["nftables"] if "rule" in e]

    def delete(self):
        run("ip", "netns", "del", self.name, check=False)


@pytest.fixture
def netns():
    """Factory: netns() makes a namespace that is removed after the test."""
    made = []

    def make(prefix="k2i-"):
        ns = Netns(prefix)
        made.append(ns)
        return ns

    yield make
    for ns in reversed(made):
        ns.delete()


@pytest.fixture
def node(netns):
    return netns("k2i-node-")


class Pod:
    """A pod namespace joined to the node namespace by a veth pair, as a CNI does it."""

    def __init__(self, make_ns, node, node_if, subnet):
        self.ns = make_ns("k2i-pod-")
        self.node_ns = node.name
        self.node_if = node_if
        self.pod_if = unique("p")
        self.node_ip = f"{subnet}.1"
        self.ip = f"{subnet}.2"
        run("ip", "link", "add", self.node_if, "netns", node.name, "type", "veth",
            "peer", "name", self.pod_if, "netns", self.ns.name)
        run("ip", "-n", node.name, "addr", "add", f"{self.node_ip}/24", "dev", self.node_if)
        run("ip", "-n", self.ns.name, "addr", "add", f"{self.ip}/24", "dev", self.pod_if)
        run("ip", "-n", node.name, "link", "set", self.node_if, "up")
        run("ip", "-n", self.ns.name, "link", "set", self.pod_if, "up")
        run("ip", "-n", self.ns.name, "route", "add", "default", "via", self.node_ip)

    def add_ipv6(self, prefix):
        """Adds PREFIX::1 (node side) and PREFIX::2 (pod side), without duplicate detection so
        they are usable at once, and the pod's default IPv6 route."""
        self.node_ip6, self.ip6 = f"{prefix}::1", f"{prefix}::2"
        run("ip", "-n", self.node_ns, "-6", "addr", "add", f"{self.node_ip6}/64", "dev", self.node_if, "nodad")
        run("ip", "-n", self.ns.name, "-6", "addr", "add", f"{self.ip6}/64", "dev", self.pod_if, "nodad")
        run("ip", "-n", self.ns.name, "-6", "route", "add", "default", "via", self.node_ip6)


@pytest.fixture
def make_pod(netns, node):
    """make_pod(node_if, subnet): a pod whose node-side interface is called node_if.
    The veth goes away with the namespaces."""

    def make(node_if, subnet):
        return Pod(netns, node, node_if, subnet)

    return make


# The server kube2iam stands for in the redirect test: answers every GET with who asked.
ECHO_SERVER = r"""
import http.server, json, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"client": self.client_address[0], "path": self.path,
                           "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.HTTPServer):
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = S((sys.argv[1], int(sys.argv[2])), H)
print("ready", flush=True)
s.serve_forever()
"""

# A minimal upstream IMDS for the host-address lookup: IMDSv2 token, then local-ipv4 / ipv6.
FAKE_IMDS = r"""
import http.server, sys
TOKEN = "test-token-0123456789"
class H(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.send_response(400); self.end_headers(); return
        self.reply(TOKEN)
    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self.send_response(401); self.end_headers(); return
        answers = {"/latest/meta-data/local-ipv4": sys.argv[3], "/latest/meta-data/ipv6": sys.argv[4]}
        if self.path not in answers:
            self.send_response(404); self.end_headers(); return
        self.reply(answers[self.path])
    def reply(self, text):
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("ready", flush=True)
s.serve_forever()
"""


@pytest.fixture
def serve(request):
    """serve(ns, "echo"|"imds", *args): runs a Python server inside ns until the test ends."""
    procs = []
    scripts = {"echo": ECHO_SERVER, "imds": FAKE_IMDS}

    def start(ns, which, *args):
        script = scripts[which]
        # Debian's python3, as the rest of the suite (a pyenv one may be first on PATH)
        p = ns.popen("/usr/bin/python3", "-c", script, *[str(a) for a in args],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        line = p.stdout.readline()
        if line.strip() != "ready":
            p.kill()
            pytest.fail(f"server did not start: {p.stderr.read()}")
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()

# SPDX-License-Identifier: BSD-3-Clause
"""The credential cache, the STS client and the node's credentials on the real loop
(tests/tools/creds-probe) against the fake STS (tests/fakes/fake_sts.py, which verifies every
SigV4 signature with botocore) and a minimal fake IMDS, all on loopback."""
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
pytest.importorskip("botocore")
from fake_sts import FakeSts  # noqa: E402

BUILD = os.environ.get("KUBE2IAM_BUILD_DIR", os.path.join(ROOT, "build"))
TOOL = os.path.join(BUILD, "tests", "tools", "creds-probe")
ROLE = "arn:aws:iam::123456789012:role/app"
NODE_KEY, NODE_SECRET, NODE_TOKEN = "AKIDNODE" + secrets.token_hex(4).upper(), secrets.token_urlsafe(30), \
    "IQoJnode" + secrets.token_urlsafe(300)


class Probe:
    def __init__(self, sts_port, *args, env=None, node_env=True):
        if not os.access(TOOL, os.X_OK):
            pytest.skip(f"{TOOL} not built")
        e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if node_env:
            e.update(AWS_ACCESS_KEY_ID=NODE_KEY, AWS_SECRET_ACCESS_KEY=NODE_SECRET, AWS_SESSION_TOKEN=NODE_TOKEN)
        e.update(env or {})
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([TOOL, "--sts-endpoint", f"http://127.0.0.1:{sts_port}/", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env=e)
        self.out = []
        self.ready = self._line()
        assert self.ready.startswith("ready"), self.ready + self.errors()

    def _line(self):
        line = self.proc.stdout.readline()
        self.out.append(line)
        return line.strip()

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._line()

    def get(self, role, n=1, ext="-", ip="10.0.0.1"):
        line = self.cmd(f"get {role} {n} {ext} {ip}")
        assert line.startswith("get ok="), line + self.errors()
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        return {"ok": int(fields["ok"]), "err": int(fields["err"]), "keys": int(fields["keys"]),
                "min_left": int(fields["min_left"]), "codes": [c for c in fields["codes"].split(",") if c]}

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                rest, _ = self.proc.communicate("quit\n", timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rest, _ = self.proc.communicate()
            self.out.append(rest or "")
        err = self.errors()
        # under -Db_sanitize the tool reports memory errors and leaks on stderr
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in err, err[err.index(marker):][:2000]
        return "".join(self.out), err


@pytest.fixture
def sts():
    fake = FakeSts(NODE_KEY, NODE_SECRET, NODE_TOKEN, region="eu-west-1").start()
    yield fake
    fake.stop()


@pytest.fixture
def probes():
    made = []
    yield made
    for p in made:
        p.close()
        if p.proc.poll() is None:
            p.proc.kill()


def calls_for(fake, role):
    return [c for c in fake.calls() if c["role_arn"] == role]


def test_sts_100_concurrent_cold_requests_make_exactly_one_call(sts, probes):
    sts.configure(delay=0.3)
    p = Probe(sts.port, "--region", "eu-west-1")
    probes.append(p)
    r = p.get(ROLE, 100)
    assert r == {"ok": 100, "err": 0, "keys": 1, "min_left": r["min_left"], "codes": []}
    calls = calls_for(sts, ROLE)
    print(f"STS calls for 100 concurrent cold requests: {len(calls)}")
    assert len(calls) == 1
    assert calls[0]["verified"] and calls[0]["duration"] == "3600"
    assert calls[0]["session_name"] == "debebe8d-app"
    assert calls[0]["content_type"] == "application/x-www-form-urlencoded; charset=utf-8"
    # served with at least the session TTL (30 min) left
    assert r["min_left"] >= 30 * 60
    # warm: no more calls
    assert p.get(ROLE, 50)["ok"] == 50
    assert len(calls_for(sts, ROLE)) == 1


def _failure_while_cached(mode, expected):
    """One fake STS per failure mode, so the three run side by side."""
    fake = FakeSts(NODE_KEY, NODE_SECRET, NODE_TOKEN, region="eu-west-1").start()
    p = None
    try:
        # 40 s credentials: a refresh is due after 16..20 s; they stay valid until 40 s
        fake.configure(expires_in=40)
        p = Probe(fake.port, "--region", "eu-west-1", "--sts-timeout-ms", "1000", "--deadline-ms", "500")
        p.cmd(f"inuse {ROLE} 1")  # a live pod uses the role: it is kept fresh
        first = p.get(ROLE)
        p.cmd("sleep 15000")
        fake.configure(mode=mode)
        for _ in range(30):
            p.cmd("sleep 1000")
            if any(c.get("result") == expected for c in fake.calls()):
                break
        seen = {c.get("result") for c in fake.calls()}
        during = p.get(ROLE, 5)
        fake.configure(mode="ok")
        return first, seen, during
    finally:
        if p:
            p.close()
        fake.stop()


def test_sts_throttling_500_and_hang_while_cached_still_served():
    from concurrent.futures import ThreadPoolExecutor
    modes = {"throttle": "Throttling", "error500": "InternalFailure", "hang": "hang"}
    with ThreadPoolExecutor(len(modes)) as ex:
        results = dict(zip(modes, ex.map(lambda m: _failure_while_cached(m, modes[m]), modes)))
    for mode, (first, seen, during) in results.items():
        assert first["ok"] == 1, mode
        assert modes[mode] in seen, (mode, seen)  # the refresh did meet the failure
        assert (during["ok"], during["err"], during["keys"]) == (5, 0, 1), (mode, during)
        assert during["min_left"] > 0


def test_sts_denied_role_errors_and_is_not_retried_in_a_loop(sts, probes):
    denied = "arn:aws:iam::123456789012:role/forbidden"
    sts.configure(deny_roles=[denied])
    p = Probe(sts.port, "--region", "eu-west-1", "--error-ttl-ms", "60000")
    probes.append(p)
    r = p.get(denied, 10)
    assert (r["ok"], r["err"], r["codes"]) == (0, 10, ["AccessDenied"])
    assert len(calls_for(sts, denied)) == 1
    p.cmd(f"inuse {denied} 1")
    r = p.get(denied, 3)
    assert r["codes"] == ["AccessDenied"]
    p.cmd("sleep 3000")
    assert len(calls_for(sts, denied)) == 1
    # other roles are unaffected
    assert p.get(ROLE)["ok"] == 1


def test_sts_denied_without_error_ttl_asks_again_only_when_asked(sts, probes):
    denied = "arn:aws:iam::123456789012:role/forbidden"
    sts.configure(deny_roles=[denied])
    p = Probe(sts.port, "--region", "eu-west-1")
    probes.append(p)
    assert p.get(denied)["codes"] == ["AccessDenied"]
    p.cmd("sleep 2000")
    assert len(calls_for(sts, denied)) == 1
    assert p.get(denied)["codes"] == ["AccessDenied"]
    assert len(calls_for(sts, denied)) == 2


def test_sts_wrong_node_secret_is_refused_by_signature_check(sts, probes):
    p = Probe(sts.port, "--region", "eu-west-1", env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    probes.append(p)
    r = p.get(ROLE, 2)
    assert (r["ok"], r["codes"]) == (0, ["SignatureDoesNotMatch"])
    assert [c["verified"] for c in calls_for(sts, ROLE)] == [False]


def test_sts_role_partition_must_match_region(sts, probes):
    p = Probe(sts.port, "--region", "eu-west-1")
    probes.append(p)
    r = p.get("arn:aws-cn:iam::123456789012:role/app")
    assert r["codes"] == ["PartitionMismatch"]
    assert sts.calls() == []


def test_sts_no_secret_in_tool_output(sts, probes):
    sts.configure(expires_in=40, deny_roles=["arn:aws:iam::123456789012:role/forbidden"])
    p = Probe(sts.port, "--region", "eu-west-1", "--verbose", "--deadline-ms", "500", "--sts-timeout-ms", "800")
    probes.append(p)
    for i in range(5):
        p.cmd(f"inuse arn:aws:iam::123456789012:role/r{i} 1")
        p.get(f"arn:aws:iam::123456789012:role/r{i}", 3)
    p.get("arn:aws:iam::123456789012:role/forbidden")
    p.cmd("sleep 23000")  # past every refresh point (60..50% of 40 s of life remaining)
    sts.configure(mode="hang")
    p.cmd("sleep 4000")
    p.cmd("metrics")
    while p._line() != "# end":
        pass
    out, err = p.close()
    issued = [c for c in sts.calls() if c.get("result") == "Success"]
    assert len(issued) >= 6
    secrets_seen = [NODE_SECRET, NODE_TOKEN]
    for c in issued:
        secrets_seen += [c["secret_access_key"], c["session_token"], c["access_key_id"]]
    leaked = [s[:6] + "…" for s in secrets_seen if s in out or s in err]
    assert leaked == []
    assert "AssumeRole" in err  # the log did run


class FakeImdsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):
        pass

    def _send(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        self.state["requests"].append(("PUT", self.path, None))
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self._send(400, "Missing or Invalid Parameters")
        return self._send(200, self.state["token"])

    def do_GET(self):
        tok = self.headers.get("X-aws-ec2-metadata-token")
        self.state["requests"].append(("GET", self.path, tok))
        if tok != self.state["token"]:
            return self._send(401, "")
        paths = {
            "/latest/meta-data/placement/region": self.state["region"],
            "/latest/meta-data/iam/security-credentials/": "node-role",
            "/latest/meta-data/iam/security-credentials/node-role": json.dumps({
                "Code": "Success", "LastUpdated": "2026-01-01T00:00:00Z", "Type": "AWS-HMAC",
                "AccessKeyId": NODE_KEY, "SecretAccessKey": NODE_SECRET, "Token": NODE_TOKEN,
                "Expiration": "2099-01-01T00:00:00Z"}),
        }
        if self.path == "/latest/meta-data/placement/region" and self.state.get("region_failures", 0) > 0:
            self.state["region_failures"] -= 1
            return self._send(500, "")
        if self.path in paths:
            return self._send(200, paths[self.path])
        return self._send(404, "")


def test_sts_node_credentials_and_region_from_imds(probes):
    # the first region read fails (IMDS not ready at boot): discovery retries
    state = {"token": secrets.token_urlsafe(40), "region": "ap-southeast-2", "requests": [], "region_failures": 1}
    handler = type("H", (FakeImdsHandler,), {"state": state})
    imds = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=imds.serve_forever, daemon=True).start()
    fake = FakeSts(NODE_KEY, NODE_SECRET, NODE_TOKEN, region="ap-southeast-2").start()
    try:
        p = Probe(fake.port, "--metadata", f"127.0.0.1:{imds.server_address[1]}", node_env=False)
        probes.append(p)
        assert p.ready == "ready node=imds region=ap-southeast-2"
        r = p.get(ROLE, 20)
        assert (r["ok"], r["keys"]) == (20, 1)
        assert [c["verified"] for c in fake.calls()] == [True]
        methods = [(m, path) for m, path, _ in state["requests"]]
        assert ("PUT", "/latest/api/token") in methods
        assert ("GET", "/latest/meta-data/iam/security-credentials/node-role") in methods
        assert all(tok == state["token"] for m, _, tok in state["requests"] if m == "GET")
        assert methods.count(("GET", "/latest/meta-data/placement/region")) == 2
        out, err = p.close()
        assert NODE_SECRET not in out + err and NODE_TOKEN not in out + err and state["token"] not in out + err
    finally:
        fake.stop()
        imds.shutdown()
        imds.server_close()


def test_sts_region_from_environment(sts, probes):
    p = Probe(sts.port, env={"AWS_DEFAULT_REGION": "eu-west-1"})
    probes.append(p)
    assert p.ready == "ready node=env region=eu-west-1"
    assert p.get(ROLE)["ok"] == 1
    assert [c["verified"] for c in sts.calls()] == [True]

# SPDX-License-Identifier: BSD-3-Clause
"""The HTTP surface: routing as kube2iam's mux does it, /healthz, limits on what clients send."""

import http.client
import json
import socket
import time

import pytest

from k2i_testlib import start_with_pods, wait_until


def request(d, method, path, headers=None, body=None, timeout=10):
    c = http.client.HTTPConnection(d.host, d.port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def raw(d, data, timeout=5):
    with socket.create_connection((d.host, d.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"Content-Length: 0" in out:
                    break
        except socket.timeout:
            pass
        return out


@pytest.fixture
def daemon(fake_imds, daemon_factory):
    return daemon_factory([f"--metadata-addr={fake_imds.addr}", "--host-ip=10.0.0.1"])


def test_healthz_has_kube2iams_shape(daemon):
    deadline = time.monotonic() + 5
    while True:
        r, body = request(daemon, "GET", "/healthz")
        doc = json.loads(body)
        if doc["instanceId"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status == 200
    assert r.getheader("Content-Type") == "application/json"
    assert body.endswith(b"\n")
    # kube2iam's two fields, plus whether the pod cache is synced (no kubeconfig here: not synced)
    assert doc == {"hostIP": "10.0.0.1", "instanceId": "i-0123456789abcdef0", "cachesSynced": False}


def test_healthz_does_not_fail_when_imds_hangs(fake_imds, daemon_factory):
    fake_imds.configure(hang=True)
    d = daemon_factory([f"--metadata-addr={fake_imds.addr}", "--host-ip=10.0.0.1"])
    r, body = request(d, "GET", "/healthz")
    assert r.status == 200
    assert json.loads(body)["hostIP"] == "10.0.0.1"


def test_every_method_reaches_the_handler(daemon):
    for m in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        r, _ = request(daemon, m, "/healthz")
        assert r.status == 200, m


@pytest.fixture
def pod_daemon(node_env, daemon_factory):
    """The client (127.0.0.1) is a pod of this node: only pods get metadata."""
    return start_with_pods(node_env, daemon_factory, ["127.0.0.1"])


def test_unclean_paths_redirect_like_mux(pod_daemon):
    daemon = pod_daemon
    r, body = request(daemon, "GET", "/latest//meta-data/./iam/../instance-id?x=1")
    assert r.status == 301
    assert r.getheader("Location") == "/latest/meta-data/instance-id?x=1"
    r, _ = request(daemon, "GET", "/healthz/../healthz")
    assert r.status == 301 and r.getheader("Location") == "/healthz"
    # a trailing slash is kept, not redirected
    r, _ = request(daemon, "GET", "/latest/meta-data/")
    assert r.status == 200


def test_credential_routes_answer_404_for_an_unknown_pod_after_the_backoff_budget(fake_imds, daemon_factory):
    d = daemon_factory([f"--metadata-addr={fake_imds.addr}", "--backoff-max-elapsed-time=200ms",
                        "--backoff-max-interval=100ms"])
    for path in ("/latest/meta-data/iam/security-credentials",
                 "/latest/meta-data/iam/security-credentials/",
                 "/2016-09-02/meta-data/iam/security-credentials/some-role",
                 "/foo/meta-data/iam/security-credentials/arn:aws:iam::1:role/path/x",
                 "/latest/meta-data/iam/info"):
        r, body = request(d, "GET", path)
        assert r.status == 404, path
        assert body == b'pod with specificed IP "127.0.0.1" not found\n'
        assert r.getheader("Server") == "EC2ws"
        assert r.getheader("Content-Type") == "text/plain; charset=utf-8"
    # never the node's role: the upstream saw none of these
    assert not [q for q in fake_imds.requests() if "security-credentials/" in q["path"] and
                q["path"] != "/latest/meta-data/iam/security-credentials/" and "node-role" not in q["path"]]


def test_malformed_percent_escape_is_400(daemon):
    r, _ = request(daemon, "GET", "/latest/meta-data/%zz")
    assert r.status == 400
    r, _ = request(daemon, "GET", "/latest/meta-data/%00")
    assert r.status == 400


def test_oversized_headers_are_refused_and_service_continues(daemon):
    r = raw(daemon, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 4"), r[:100]
    r2, _ = request(daemon, "GET", "/healthz")
    assert r2.status == 200


def test_a_head_at_the_limits_is_answered_and_twice_the_bytes_are_refused(daemon):
    """HTTP_MAX_HEADER_BYTES (4 KiB) in HTTP_MAX_HEADER_LINES (32) lines fits the connection's pool
    (docs/limits.md); 8 KiB does not."""
    def head(lines, size):
        h = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(lines - 2))
        return h + b"X-Pad: " + b"p" * (size - len(h) - len(b"X-Pad: \r\n\r\n")) + b"\r\n\r\n"

    for lines, size in ((2, 4096), (32, 4096)):
        data = head(lines, size)
        assert len(data) == size and data.count(b"\r\n") == lines + 2  # the request line, the blank line
        r = raw(daemon, data)
        assert r.startswith(b"HTTP/1.1 200 "), (lines, r[:100])
    r = raw(daemon, head(2, 8192))
    assert r.startswith(b"HTTP/1.1 431 "), r[:100]


def test_oversized_body_is_413(daemon):
    r, _ = request(daemon, "PUT", "/latest/api/token", body=b"x" * 5000)
    assert r.status == 413


def test_malformed_request_line_is_400(daemon):
    r = raw(daemon, b"GARBAGE\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 400") or r == b"", r[:100]
    r2, _ = request(daemon, "GET", "/healthz")
    assert r2.status == 200


def test_long_path_is_refused(daemon):
    r = raw(daemon, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 4") or r == b"", r[:100]
    r2, _ = request(daemon, "GET", "/healthz")
    assert r2.status == 200


def test_200_idle_connections_do_not_block_a_request(pod_daemon):
    daemon = pod_daemon
    # from many source addresses, as many pods would (one address is capped per-IP below)
    idle = []
    try:
        for i in range(200):
            idle.append(socket.create_connection((daemon.host, daemon.port), timeout=5,
                                                 source_address=(f"127.0.{1 + i // 100}.{2 + i % 100}", 0)))
        r, body = request(daemon, "GET", "/latest/meta-data/instance-id")
        assert r.status == 200
        assert body == b"i-0123456789abcdef0"
    finally:
        for s in idle:
            s.close()


def test_keep_alive_connection_serves_many_requests(daemon):
    c = http.client.HTTPConnection(daemon.host, daemon.port, timeout=5)
    for _ in range(50):
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        assert r.status == 200
        assert r.getheader("Connection") != "close"
    c.close()


def read_to_eof(s, deadline_s=5):
    out = b""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            return out, True
        out += chunk
    return out, False


def test_connection_close_gets_the_whole_answer_then_the_end_of_the_stream(daemon):
    """The daemon sends the FIN itself after the last answer of a connection whose request said
    close (docs/design.md, MHD_USE_TURBO): the answer is whole, the stream then ends, and a
    connection whose header only resembles the token stays open for the next request."""
    for value in ("close", "Close", "keep-alive, close", "TE,close"):
        for _ in range(20):
            with socket.create_connection((daemon.host, daemon.port), timeout=5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n\r\n" % value.encode())
                out, eof = read_to_eof(s)
            assert eof, value
            head, _, body = out.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head, out
            length = int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")][0].split(b":")[1])
            assert len(body) == length, out
    # pipelined: the first is kept alive, the second says close: both answered, then the end
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out, eof = read_to_eof(s)
    assert eof and out.count(b"HTTP/1.1 200") == 2, out
    # not the token: the connection is kept and serves another request
    for value in ("closed", "x-close", "keep-alive"):
        c = http.client.HTTPConnection(daemon.host, daemon.port, timeout=5)
        for _ in range(3):
            c.request("GET", "/healthz", headers={"Connection": value})
            r = c.getresponse()
            r.read()
            assert r.status == 200 and r.getheader("Connection") != "close", value
        c.close()


def test_pipelined_requests_are_all_answered(daemon):
    n = 10
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * n)
        out = b""
        deadline = time.monotonic() + 5
        while out.count(b"HTTP/1.1 200") < n and time.monotonic() < deadline:
            out += s.recv(65536)
    assert out.count(b"HTTP/1.1 200") == n


def test_one_address_cannot_take_every_connection(daemon):
    held = []
    try:
        for _ in range(300):  # over HTTP_MAX_CONNECTIONS_PER_IP
            held.append(socket.create_connection((daemon.host, daemon.port), timeout=5,
                                                 source_address=("127.0.9.9", 0)))
        # another address is still served
        with socket.create_connection((daemon.host, daemon.port), timeout=5,
                                      source_address=("127.0.9.10", 0)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        # and the greedy one is refused beyond its share once the kernel has handed its silent
        # connections to the daemon (TCP_DEFER_ACCEPT, about 1 s after they opened: until then
        # they hold no slot of the daemon's)
        def refused():
            with socket.create_connection((daemon.host, daemon.port), timeout=5,
                                          source_address=("127.0.9.9", 0)) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    return s.recv(100) == b""
                except ConnectionResetError:
                    return True

        wait_until(refused, timeout=10, interval=0.1, what="the greedy address to be refused beyond its share")
    finally:
        for s in held:
            s.close()

# SPDX-License-Identifier: BSD-3-Clause
"""The reverse proxy to the upstream IMDS, for what the metadata table forwards
(docs/imds-surface.md). Only pods of this node get metadata: the client (127.0.0.1) is a pod."""

import http.client
import socket
import time

import pytest

from k2i_testlib import metric_value, start_with_pods

# a path never kept (docs/imds-surface.md: public addresses): each GET asks the upstream
NEVER_KEPT = "/latest/meta-data/public-ipv4"


def request(d, method, path, headers=None, body=None, timeout=10):
    c = http.client.HTTPConnection(d.host, d.port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def last(fake, path):
    reqs = [r for r in fake.requests() if r["path"] == path]
    assert reqs, f"upstream never saw {path}: {fake.requests()}"
    return reqs[-1]


def header(rec, name):
    vals = [v for k, v in rec["headers"] if k.lower() == name.lower()]
    return vals[0] if vals else None


@pytest.fixture
def proxied(node_env, daemon_factory):
    d = start_with_pods(node_env, daemon_factory, ["127.0.0.1"])
    return d, node_env.imds


def test_proxy_keeps_path_and_host_but_not_the_query(proxied):
    d, fake = proxied
    r, body = request(d, "GET", "/latest/meta-data/hostname?a=1&b=%2F", headers={"Host": "169.254.169.254"})
    assert r.status == 200
    assert body == b"ip-10-0-0-1.ec2.internal"
    rec = last(fake, "/latest/meta-data/hostname")
    assert header(rec, "Host") == "169.254.169.254"
    assert rec["method"] == "GET"
    assert not [q for q in fake.requests() if "?" in q["path"]]


def test_proxy_returns_upstream_status_and_headers(proxied):
    d, fake = proxied
    r, _ = request(d, "GET", "/latest/meta-data/block-device-mapping/ephemeral9")  # forwarded, absent upstream
    assert r.status == 404 and last(fake, "/latest/meta-data/block-device-mapping/ephemeral9")
    r, _ = request(d, "GET", "/latest/meta-data/instance-id")
    assert r.getheader("Server") == "EC2ws"  # the upstream's, passed through


def test_proxy_appends_peer_to_x_forwarded_for(proxied):
    d, fake = proxied  # a path forwarded every time (instance facts are answered from memory)
    request(d, "GET", NEVER_KEPT, headers={"X-Forwarded-For": "1.2.3.4"})
    assert header(last(fake, NEVER_KEPT), "X-Forwarded-For") == "1.2.3.4, 127.0.0.1"
    fake.reset()
    request(d, "GET", NEVER_KEPT)
    assert header(last(fake, NEVER_KEPT), "X-Forwarded-For") == "127.0.0.1"


def test_token_put_is_answered_by_the_daemon_not_proxied(proxied):
    d, fake = proxied
    fake.reset()
    r, token = request(d, "PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert r.status == 200, token
    assert r.getheader("X-aws-ec2-metadata-token-ttl-seconds") == "60"
    assert not [q for q in fake.requests() if q["path"].endswith("/api/token") and q["client_port"] and
                header(q, "X-aws-ec2-metadata-token-ttl-seconds") == "60"]


def test_proxied_get_with_a_pod_token_carries_the_daemons_upstream_token(proxied):
    d, fake = proxied
    r, token = request(d, "PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert r.status == 200
    # let the daemon's own IMDS client get its upstream token (the health check does, at start)
    deadline = time.monotonic() + 5
    while not any(q["path"] == "/latest/api/token" for q in fake.requests()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    fake.reset()
    r, body = request(d, "GET", "/latest/meta-data/local-ipv4", headers={"X-aws-ec2-metadata-token": token.decode()})
    assert r.status == 200 and body == b"10.0.0.1"
    rec = last(fake, "/latest/meta-data/local-ipv4")
    upstream = header(rec, "X-aws-ec2-metadata-token")
    assert upstream and upstream.startswith("fake-imds-token-")  # the daemon's, not the pod's
    assert upstream != token.decode()
    # kube2iam's rule: a GET that carries a token gets no X-Forwarded-For
    assert header(rec, "X-Forwarded-For") is None


def test_a_bad_pod_token_is_401_and_never_proxied(proxied):
    d, fake = proxied
    fake.reset()
    r, _ = request(d, "GET", "/latest/meta-data/local-ipv4", headers={"X-aws-ec2-metadata-token": "forged"})
    assert r.status == 401
    assert not [q for q in fake.requests() if q["path"] == "/latest/meta-data/local-ipv4"]


def test_client_x_forwarded_for_on_token_put_is_refused(proxied):
    d, fake = proxied
    r, _ = request(d, "PUT", "/latest/api/token",
                   headers={"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "9.9.9.9"})
    assert r.status == 403


def test_hop_by_hop_headers_are_dropped(proxied):
    d, fake = proxied
    request(d, "GET", "/latest/meta-data/hostname",
            headers={"Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1", "Keep-Alive": "timeout=5",
                     "Proxy-Authorization": "Basic Zm9vOmJhcg==", "Te": "trailers", "X-Keep-Me": "yes"})
    rec = last(fake, "/latest/meta-data/hostname")
    for h in ("Connection", "X-Drop-Me", "Keep-Alive", "Proxy-Authorization", "Te"):
        assert header(rec, h) is None, h
    assert header(rec, "X-Keep-Me") == "yes"


def test_methods_other_than_get_and_head_are_refused_not_forwarded(proxied):
    d, fake = proxied
    r, _ = request(d, "POST", "/latest/meta-data/hostname", body=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status == 405
    assert not [q for q in fake.requests() if q["method"] == "POST"]


def test_upstream_down_gives_502_with_empty_body(node_env, daemon_factory):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    # the last --metadata-addr wins
    d = start_with_pods(node_env, daemon_factory, ["127.0.0.1"], f"--metadata-addr=127.0.0.1:{dead}")
    r, body = request(d, "GET", "/latest/meta-data/instance-id")
    assert r.status == 502
    assert body == b""
    assert "proxy error" in d.output()


def test_upstream_hang_gives_502_after_the_proxy_timeout(proxied):
    d, fake = proxied
    fake.configure(hang=True)
    r, body = request(d, "GET", "/latest/meta-data/instance-id", timeout=30)
    assert r.status == 502
    # the daemon is still serving others
    fake.configure(hang=False)
    r, body = request(d, "GET", "/latest/meta-data/local-ipv4")
    assert r.status == 200


def test_upstream_connections_are_reused(proxied):
    d, fake = proxied
    path = NEVER_KEPT
    for _ in range(20):
        r, _ = request(d, "GET", path)
        assert r.status == 200
    ports = {r["client_port"] for r in fake.requests() if r["path"] == path}
    assert len([r for r in fake.requests() if r["path"] == path]) == 20
    # sequential requests go over the kept-alive upstream connections the daemon already has (its
    # IMDS client opens a few at start), not one new connection each
    assert len(ports) <= 5, ports


def test_dropped_upstream_connection_gives_502(proxied):
    d, fake = proxied
    fake.configure(drop=True)
    r, body = request(d, "GET", "/latest/meta-data/instance-id")
    assert r.status == 502


def test_user_data_and_the_node_identity_are_not_proxied(proxied):
    d, fake = proxied
    r, body = request(d, "GET", "/latest/user-data")
    assert r.status == 404 and b"node user data" not in body
    assert not [q for q in fake.requests() if q["path"] == "/latest/user-data"]
    fake.reset()
    r, body = request(d, "GET", "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance")
    assert r.status == 404
    assert not fake.requests() or all("identity-credentials" not in q["path"] for q in fake.requests())


def test_immutable_instance_facts_are_fetched_once_and_answered_from_memory(proxied):
    d, fake = proxied
    for path in ("/latest/meta-data/instance-id", "/latest/meta-data/placement/availability-zone-id"):
        answers = set()
        for _ in range(10):
            r, body = request(d, "GET", path)
            assert r.status == 200
            answers.add((body, r.getheader("Content-Type"), r.getheader("Server")))
        assert len(answers) == 1, answers  # the kept answer is the upstream's, headers included
        # proxied (X-Forwarded-For added), not the daemon's own look-ups of the node
        assert len([q for q in fake.requests() if q["path"] == path and header(q, "X-Forwarded-For")]) == 1


def test_what_can_change_under_a_pod_is_forwarded_every_time(proxied):
    d, fake = proxied
    mac = request(d, "GET", "/latest/meta-data/mac")[1].decode()
    for path in ("/latest/meta-data/spot/instance-action", "/latest/meta-data/public-ipv4",
                 "/latest/meta-data/instance-action", "/latest/meta-data/ipv6",
                 "/latest/meta-data/autoscaling/target-lifecycle-state",
                 "/latest/meta-data/events/maintenance/scheduled", "/latest/meta-data/tags/instance/Name",
                 f"/latest/meta-data/network/interfaces/macs/{mac}/public-ipv4s"):
        for _ in range(3):
            request(d, "GET", path)
        assert len([q for q in fake.requests() if q["path"] == path]) == 3, path


def test_an_upstream_error_on_an_immutable_fact_is_not_kept(proxied):
    d, fake = proxied
    fake.configure(status=500)
    r, _ = request(d, "GET", "/latest/meta-data/ami-id")
    assert r.status == 500
    fake.configure(status=None)
    for _ in range(3):
        r, body = request(d, "GET", "/latest/meta-data/ami-id")
        assert r.status == 200 and body == b"ami-0123456789abcdef0"
    assert len([q for q in fake.requests() if q["path"] == "/latest/meta-data/ami-id"]) == 2


def test_a_pod_over_its_link_local_budget_gets_429_and_nothing_more_reaches_the_imds(proxied):
    d, fake = proxied
    path = NEVER_KEPT
    c = http.client.HTTPConnection(d.host, d.port, timeout=10)
    statuses = []
    for _ in range(400):  # far past the pod's burst (PROXY_POD_BURST, 128) on one kept-alive connection
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        statuses.append(r.status)
    c.close()
    assert set(statuses) <= {200, 429}, set(statuses)
    assert statuses[:128] == [200] * 128  # a full bucket first
    assert 429 in statuses
    # what was throttled never went upstream: the fake saw exactly the answered ones
    assert len([q for q in fake.requests() if q["path"] == path]) == statuses.count(200)
    assert metric_value(d, "kube2iam_imds_upstream_throttled_total") == statuses.count(429)
    assert metric_value(d, "kube2iam_imds_upstream_requests_total") == statuses.count(200)

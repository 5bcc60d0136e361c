# SPDX-License-Identifier: BSD-3-Clause
"""Fault injection against the upstream IMDS (tests/fakes/fake_imds.py): slow, hanging, dropping
connections, and gone. Proxied paths answer 502 within PROXY_TIMEOUT_MSEC (3 s) plus slack, while
pods' credentials, which the daemon holds itself (and signs STS calls with the node's cached
credentials), are unaffected. Loopback only: pods are 127.0.0.x."""

import http.client
import json
import socket
import threading

from k2i_testlib import assert_clean_output, start_with_pods, wait_until
from node_env import BASE_ARN

FAST = ["--backoff-max-elapsed-time=300ms", "--backoff-max-interval=100ms"]
CREDS = "/latest/meta-data/iam/security-credentials/"
# src/http/proxy.h: PROXY_TIMEOUT_MSEC (3 s total, connect included); the socket deadline adds
# 5 s of slack for a loaded machine. A request unanswered by then waited past its deadline.
PROXY_DEADLINE = 3 + 5
# A credential request waits at most IMDS_SERVICE_CREDS_WAIT (5 s), doubled for a loaded machine.
CREDS_DEADLINE = 10


# a public address: never kept (docs/imds-surface.md), every GET asks the upstream
MUTABLE = "/latest/meta-data/public-ipv4"


def get(d, path, source="127.0.0.1", timeout=CREDS_DEADLINE):
    c = http.client.HTTPConnection(d.host, d.port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except socket.timeout:
        raise AssertionError(f"{path} from {source} was not answered within {timeout} s")
    finally:
        c.close()



def pods_known(d):
    for line in get(d, "/metrics")[1].decode().splitlines():
        if line.startswith("kube2iam_pods_known "):
            return int(float(line.split()[1]))
    return -1


def test_upstream_imds_slow_hung_dropping_or_gone_gives_502_and_credentials_are_unaffected(node_env,
                                                                                          daemon_factory):
    env = node_env
    env.add_pod("app", "127.0.0.2", role="app-role")
    # the pods asking the upstream at once below (only pods get metadata)
    edge = [f"127.0.3.{i + 1}" for i in range(20)]
    d = start_with_pods(env, daemon_factory, edge, *FAST, f"--base-role-arn={BASE_ARN}")
    status, body = get(d, CREDS + "app-role", "127.0.0.2")
    assert status == 200, body
    key = json.loads(body)["AccessKeyId"]
    # a path forwarded on every request (instance facts would be answered from memory)
    assert get(d, MUTABLE, "127.0.0.2", PROXY_DEADLINE) == (200, b"203.0.113.1")

    # slow but within the proxy's timeout: still answered
    env.imds.configure(delay=1.0)
    assert get(d, MUTABLE, "127.0.0.2", PROXY_DEADLINE)[0] == 200
    env.imds.configure(delay=0)

    n_pods = 1 + len(edge)
    for fault in ({"hang": True}, {"drop": True}):
        env.imds.configure(**fault)
        proxied = []

        def ask_proxied(i):
            proxied.append(get(d, MUTABLE, edge[i], PROXY_DEADLINE)[0])

        # many pods asking the upstream at once, while a pod asks for its credentials
        threads = [threading.Thread(target=ask_proxied, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        status, body = get(d, CREDS + "app-role", "127.0.0.2")
        assert status == 200 and json.loads(body)["AccessKeyId"] == key, (fault, status, body)
        # a role nobody asked for yet: STS is signed with the node's credentials the daemon holds
        n_pods += 1
        role = f"cold-{n_pods}"
        env.add_pod(role, f"127.0.0.{n_pods + 10}", role=role)
        wait_until(lambda: pods_known(d) == n_pods, what=f"pod {role} known")
        status, body = get(d, CREDS + role, f"127.0.0.{n_pods + 10}")
        assert status == 200, (fault, status, body)
        for t in threads:
            t.join(PROXY_DEADLINE + 5)
        assert proxied == [502] * 20, (fault, proxied)
        env.imds.configure(hang=False, drop=False)

    # the upstream gone altogether: refused connections, 502 at once
    env.imds.stop()
    assert get(d, MUTABLE, "127.0.0.2", PROXY_DEADLINE) == (502, b"")
    status, body = get(d, CREDS + "app-role", "127.0.0.2")
    assert status == 200 and json.loads(body)["AccessKeyId"] == key
    env.add_pod("late", "127.0.0.40", role="late-role")
    wait_until(lambda: pods_known(d) == n_pods + 1, what="pod late known")
    assert get(d, CREDS + "late-role", "127.0.0.40")[0] == 200
    assert d.proc.poll() is None
    assert_clean_output(d.output(), env)

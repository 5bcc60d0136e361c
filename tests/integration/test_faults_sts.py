# SPDX-License-Identifier: BSD-3-Clause
"""Fault injection against STS (tests/fakes/fake_sts.py): throttling, 500s, replies slower than the
STS client's timeout, hangs, and 200s that are not AssumeRole replies. Cached credentials keep
being served, no pod request waits past its deadline, and a burst of cold roles passes the token
bucket (--sts-rate, --sts-burst). Loopback only: pods are 127.0.0.x."""

import json
import socket
import threading
import time

from k2i_testlib import assert_clean_output, http_get, wait_until
from node_env import BASE_ARN

FAST = ["--backoff-max-elapsed-time=300ms", "--backoff-max-interval=100ms"]
CREDS = "/latest/meta-data/iam/security-credentials/"
# A credential request waits at most IMDS_SERVICE_CREDS_WAIT (5 s) for STS; the socket deadline
# doubles it for a loaded machine. A request still unanswered then waited past its deadline.
DEADLINE = 10
# Issued credentials live 10 minutes, less than --iam-role-session-ttl=15m: every request finds
# the entry due for a refresh, so every request meets the failing STS, and the cached credentials
# (still valid for minutes) are what it must be served.
SHORT_LIFE_SEC = 600



def get(d, path, source="127.0.0.1", timeout=DEADLINE):
    return http_get(d, path, source, timeout)


def timed_get(d, path, source):
    """(status, body); a socket timeout means the request waited past its deadline."""
    try:
        return get(d, path, source)
    except socket.timeout:
        raise AssertionError(f"{path} from {source} was not answered within {DEADLINE} s")



def pods_known(d):
    for line in get(d, "/metrics")[1].decode().splitlines():
        if line.startswith("kube2iam_pods_known "):
            return int(float(line.split()[1]))
    return -1


def start(env, daemon_factory, *extra):
    d = daemon_factory(env.daemon_args(*FAST, f"--base-role-arn={BASE_ARN}", *extra))
    wait_until(lambda: json.loads(get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    return d


def test_sts_failures_keep_serving_cached_credentials_and_answer_cold_roles_in_time(node_env,
                                                                                    daemon_factory):
    env = node_env
    env.add_pod("warm", "127.0.0.2", role="warm-role")
    env.sts.configure(expires_in=SHORT_LIFE_SEC)
    d = start(env, daemon_factory, "--iam-role-session-ttl=15m")
    status, body = timed_get(d, CREDS + "warm-role", "127.0.0.2")
    assert status == 200, body
    key = json.loads(body)["AccessKeyId"]

    # (mode, delay): "timeout" is an STS slower than the client's 5 s timeout
    faults = [("throttle", 0), ("error500", 0), ("garbage", 0), ("ok", 8), ("hang", 0)]
    for n, (mode, delay) in enumerate(faults):
        env.sts.configure(mode=mode, delay=delay)
        before = len(env.sts.calls())
        for _ in range(6):
            status, body = timed_get(d, CREDS + "warm-role", "127.0.0.2")
            assert status == 200, (mode, status, body)
            assert json.loads(body)["AccessKeyId"] == key, mode
            time.sleep(0.2)
        # a role nobody has cached: an error, but within the deadline
        pod = f"cold-{n}"
        env.add_pod(pod, f"127.0.0.{10 + n}", role=f"{pod}-role")
        wait_until(lambda: pods_known(d) == 2 + n, what=f"pod {pod} known")
        status, body = timed_get(d, CREDS + f"{pod}-role", f"127.0.0.{10 + n}")
        if delay:
            # slower than the client's timeout, not a failure of STS: the next call may succeed
            assert status in (200, 500, 503, 504), (mode, status, body)
        else:
            assert status != 200, (mode, status, body)
        # the refresh did meet the failure
        wait_until(lambda: len(env.sts.calls()) > before, what=f"an STS call in mode {mode}")
        assert d.proc.poll() is None
    env.sts.configure(mode="ok", delay=0)
    # STS back: a role nobody asked for during the outage is fetched within its deadline. (Roles
    # that failed all along back off for up to CREDS_RETRY_MAX_USEC, a minute, by design; the
    # throttling slowed the bucket to 1/16 of --sts-rate, still a token within 2 s.)
    env.add_pod("after", "127.0.0.30", role="after-role")
    wait_until(lambda: pods_known(d) == 2 + len(faults), what="pod after known")
    status, body = timed_get(d, CREDS + "after-role", "127.0.0.30")
    assert status == 200, body
    assert_clean_output(d.output(), env)


def test_sts_burst_of_cold_roles_respects_the_token_bucket(node_env, daemon_factory):
    env = node_env
    rate, burst = 2.0, 3
    d = start(env, daemon_factory, f"--sts-rate={rate:g}", f"--sts-burst={burst}")
    n = 16
    for i in range(n):
        env.add_pod(f"burst-{i}", f"127.0.2.{i + 1}", role=f"burst-{i}")
    results = [None] * n

    def ask(i):
        try:
            results[i] = get(d, CREDS + f"burst-{i}", f"127.0.2.{i + 1}")[0]
        except socket.timeout:
            results[i] = "timeout"

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE + 5)
    # every request answered within its deadline: 200, or an error when the bucket kept it waiting
    assert "timeout" not in results, results
    # every role fetched in the end
    wait_until(lambda: len({c["role_arn"] for c in env.sts.calls() if c.get("result") == "Success"}) == n,
               timeout=n / rate + 15, what="all cold roles fetched")
    times = sorted(c["time"] for c in env.sts.calls())
    # in any window of w seconds at most burst + rate * w calls (+1: a token refilled at the edge)
    for i, t0 in enumerate(times):
        for j in range(i, len(times)):
            w = times[j] - t0
            assert j - i + 1 <= burst + rate * w + 1, \
                f"{j - i + 1} STS calls in {w:.2f} s exceed --sts-burst={burst} --sts-rate={rate:g}"
    # and a burst did happen, then the rate held: the calls were spread over ~(n - burst) / rate s
    assert times[-1] - times[0] >= (n - burst - 1) / rate * 0.9, times
    assert_clean_output(d.output(), env)

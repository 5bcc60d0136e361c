# SPDX-License-Identifier: BSD-3-Clause
"""Single-flight and TTLs of the IMDS proxy (docs/imds-surface.md, "One upstream request per path
in flight" and "Answers kept for a TTL"): concurrent GETs of one path share one upstream request
and all get its answer, an error included; an answer is reused only for its path's TTL; what is
never kept is asked every time; sharing costs no link-local budget, and the budget still holds.
The fake IMDS (tests/fakes/fake_imds.py) holds answers on request, so a test knows when a request
is in flight upstream instead of guessing from time."""

import http.client
import threading

from k2i_testlib import metric_value, start_with_pods, wait_until

MD = "/latest/meta-data/"
MAC = "0e:11:22:33:44:55"
NEVER_KEPT = MD + "public-ipv4"  # a public address: never kept
PODS = [f"127.0.5.{i + 1}" for i in range(12)]


def get(d, path, source, timeout=20):
    c = http.client.HTTPConnection(d.host, d.port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read(), r.getheader("Content-Type")
    finally:
        c.close()


def upstream(fake, path):
    """What the fake got for path on a pod's behalf (the daemon's own client adds no X-Forwarded-For)."""
    return [q for q in fake.requests() if q["path"] == path and
            any(k.lower() == "x-forwarded-for" for k, _ in q["headers"])]


def metric(d, name):
    return int(metric_value(d, name) or 0)


def ask_while_held(d, fake, path, pods):
    """Every pod GETs path while the upstream holds the first request: the first pod's request is
    in flight before the others ask, and all of them have joined it before it is answered. Returns
    each pod's (status, body, content type), in the order of pods."""
    answers = [None] * len(pods)
    joined = metric(d, "kube2iam_imds_upstream_joined_total")

    def ask(i):
        answers[i] = get(d, path, pods[i])

    fake.configure(hold=True)
    try:
        threads = [threading.Thread(target=ask, args=(0,))]
        threads[0].start()
        wait_until(lambda: upstream(fake, path), what="the first request upstream")
        threads += [threading.Thread(target=ask, args=(i,)) for i in range(1, len(pods))]
        for t in threads[1:]:
            t.start()
        wait_until(lambda: metric(d, "kube2iam_imds_upstream_joined_total") - joined == len(pods) - 1,
                   what="every other request joined")
    finally:
        fake.configure(hold=False)
    for t in threads:
        t.join(30)
    return answers


def test_concurrent_identical_gets_share_one_upstream_request_and_all_get_its_answer(node_env, daemon_factory):
    d = start_with_pods(node_env, daemon_factory, PODS)
    sent = metric(d, "kube2iam_imds_upstream_requests_total")
    answers = ask_while_held(d, node_env.imds, NEVER_KEPT, PODS)
    assert answers == [(200, b"203.0.113.1", "text/plain")] * len(PODS), answers
    assert len(upstream(node_env.imds, NEVER_KEPT)) == 1
    # the joined requests sent nothing upstream, so they cost no budget
    assert metric(d, "kube2iam_imds_upstream_requests_total") - sent == 1
    # never kept: once the answer is out, the next GET asks the upstream again
    assert get(d, NEVER_KEPT, PODS[0])[0] == 200
    assert len(upstream(node_env.imds, NEVER_KEPT)) == 2
    assert metric(d, "kube2iam_imds_upstream_ttl_hits_total") == 0


def test_an_upstream_error_reaches_every_joined_request_alike(node_env, daemon_factory):
    d = start_with_pods(node_env, daemon_factory, PODS)
    fake = node_env.imds
    # the upstream's own error status and body, to everyone
    fake.configure(status=500)
    answers = ask_while_held(d, fake, NEVER_KEPT, PODS)
    assert {a[:2] for a in answers} == {(500, b"forced status\n")}, answers
    # a failed exchange (the upstream drops the connection): 502 with an empty body, to everyone
    fake.configure(status=None, drop=True)
    fake.reset()
    answers = ask_while_held(d, fake, NEVER_KEPT, PODS)
    assert [a[:2] for a in answers] == [(502, b"")] * len(PODS), answers
    # only the first pod's request went upstream (curl retries it on another kept-alive connection
    # when the one it reused turns out dropped)
    xff = {v for q in upstream(fake, NEVER_KEPT) for k, v in q["headers"] if k.lower() == "x-forwarded-for"}
    assert xff == {PODS[0]}, xff
    # an error is never kept: with the upstream back, the next GET asks it
    fake.configure(drop=False)
    assert get(d, NEVER_KEPT, PODS[0])[:2] == (200, b"203.0.113.1")
    assert get(d, MD + "block-device-mapping/ami", PODS[0])[:2] == (200, b"/dev/xvda")
    assert "proxy error" in d.output()


def test_an_answer_is_reused_for_its_ttl_and_asked_again_after_it(node_env, daemon_factory):
    d = start_with_pods(node_env, daemon_factory, PODS[:1])
    fake = node_env.imds
    # 10 s (IMDS changes block devices only when the instance starts): reused, not asked again
    path = MD + "block-device-mapping/ami"
    for _ in range(5):
        assert get(d, path, PODS[0])[:2] == (200, b"/dev/xvda")
    assert len(upstream(fake, path)) == 1
    assert metric(d, "kube2iam_imds_upstream_ttl_hits_total") == 4
    # 1 s (an interface's subnet): the upstream's new answer shows once the TTL has run out, and
    # that took exactly one more upstream request however many GETs came in between
    path = MD + f"network/interfaces/macs/{MAC}/subnet-id"
    assert get(d, path, PODS[0])[:2] == (200, b"subnet-1")
    fake.configure(paths={path: "subnet-2"})
    seen = []

    def changed():
        seen.append(get(d, path, PODS[0])[:2])
        return seen[-1] == (200, b"subnet-2")

    wait_until(changed, timeout=20, interval=0.05, what="the new subnet after the TTL")
    assert set(seen) <= {(200, b"subnet-1"), (200, b"subnet-2")}, seen
    assert len(upstream(fake, path)) == 2


def test_the_budget_still_bounds_what_goes_upstream_and_kept_answers_cost_none(node_env, daemon_factory):
    d = start_with_pods(node_env, daemon_factory, PODS[:1])
    fake = node_env.imds
    kept = MD + "services/partition"  # 10 s
    assert get(d, kept, PODS[0])[:2] == (200, b"aws")
    c = http.client.HTTPConnection(d.host, d.port, timeout=10, source_address=(PODS[0], 0))
    statuses = []
    for _ in range(300):  # past the pod's burst (PROXY_POD_BURST, 128), one request at a time
        c.request("GET", NEVER_KEPT)
        r = c.getresponse()
        r.read()
        statuses.append(r.status)
    # the pod's bucket is empty now: what would go upstream is 429, a kept answer is still served
    c.request("GET", kept)
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"aws")
    c.close()
    assert set(statuses) == {200, 429}, set(statuses)
    assert len(upstream(fake, NEVER_KEPT)) == statuses.count(200)
    assert len(upstream(fake, kept)) == 1
    assert metric(d, "kube2iam_imds_upstream_throttled_total") == statuses.count(429)

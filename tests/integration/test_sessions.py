# SPDX-License-Identifier: BSD-3-Clause
"""Pod-Identity-grade sessions end to end (docs/sessions.md): session tags, what they do to the
cache key, and STS's refusals of tagged calls. The daemon runs against the fake API server, STS
(which checks every AssumeRole parameter as STS does and records them) and IMDS on loopback;
botocore is the pods' client."""

import json
import subprocess

from k2i_testlib import wait_until
from node_env import BASE_ARN
from test_credentials import aws_env, get, served_by_sts, start

ROLE = "shared-role"
CREDS = "/latest/meta-data/iam/security-credentials/"
CLUSTER_ARN = "arn:aws:eks:us-east-1:123456789012:cluster/prod-1"


def answer(d, path, source):
    """The first answer that is not 404: with --session-tags or --session-policies a pod waits for
    its namespace, and the namespace list may arrive after the pod list (404 until then)."""
    got = []
    wait_until(lambda: got.append(get(d, path, source=source)) or got[-1][0].status != 404,
               what=f"an answer for {source}")
    return got[-1]


def botocore_key(d):
    """The access key botocore gets from the daemon, as the pod at 127.0.0.1."""
    code = ("import botocore.session, json; c = botocore.session.get_session().get_credentials();"
            "print(json.dumps(c.get_frozen_credentials().access_key))")
    r = subprocess.run(["/usr/bin/python3", "-c", code], env=aws_env(d), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def http_key(d, source):
    r, body = answer(d, CREDS + ROLE, source)
    assert r.status == 200, body
    return json.loads(body)["AccessKeyId"]


def test_two_namespaces_with_one_role_get_two_tagged_sessions(node_env, daemon_factory):
    node_env.api.add_namespace("payments")
    node_env.api.add_namespace("search")
    node_env.add_pod("pay", "127.0.0.1", role=ROLE, namespace="payments", service_account="pay-sa")
    node_env.add_pod("find", "127.0.0.62", role=ROLE, namespace="search", service_account="find-sa")
    node_env.add_pod("pay-2", "127.0.0.63", role=ROLE, namespace="payments", service_account="pay-sa")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}",
              "--session-tags=kubernetes-namespace,kubernetes-service-account")
    keys = {"127.0.0.62": http_key(d, "127.0.0.62"), "127.0.0.63": http_key(d, "127.0.0.63"),
            "127.0.0.1": botocore_key(d)}
    calls = served_by_sts(node_env, BASE_ARN + ROLE)
    by_ns = {c["tags"]["kubernetes-namespace"]: c for c in calls}
    # one session per (role, namespace, service account): the two payments pods share one
    assert len(calls) == 2, calls
    assert by_ns["payments"]["tags"] == {"kubernetes-namespace": "payments", "kubernetes-service-account": "pay-sa"}
    assert by_ns["search"]["tags"] == {"kubernetes-namespace": "search", "kubernetes-service-account": "find-sa"}
    assert sorted(by_ns["search"]["transitive_tag_keys"]) == ["kubernetes-namespace", "kubernetes-service-account"]
    assert keys["127.0.0.1"] == keys["127.0.0.63"] == by_ns["payments"]["access_key_id"]
    assert keys["127.0.0.62"] == by_ns["search"]["access_key_id"]


def test_session_tags_alone_send_pod_identitys_six_tags(node_env, daemon_factory):
    uid = node_env.add_pod("web-0", "127.0.0.64", role=ROLE, service_account="web")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--session-tags",
              "--cluster-name=prod-1", f"--cluster-arn={CLUSTER_ARN}")
    r, _ = answer(d, CREDS + ROLE, "127.0.0.64")
    assert r.status == 200
    call = served_by_sts(node_env, BASE_ARN + ROLE)[-1]
    want = {"eks-cluster-arn": CLUSTER_ARN, "eks-cluster-name": "prod-1", "kubernetes-namespace": "default",
            "kubernetes-service-account": "web", "kubernetes-pod-name": "web-0", "kubernetes-pod-uid": uid}
    assert call["tags"] == want
    assert sorted(call["transitive_tag_keys"]) == sorted(want)


def test_without_session_tags_nothing_is_tagged(node_env, daemon_factory):
    node_env.add_pod("plain", "127.0.0.65", role=ROLE)
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, _ = get(d, CREDS + ROLE, source="127.0.0.65")
    assert r.status == 200
    call = served_by_sts(node_env, BASE_ARN + ROLE)[-1]
    assert call["tags"] == {} and call["transitive_tag_keys"] == [] and call["policy_arns"] == []


def test_trust_policy_without_tag_session_is_a_500_with_the_code_and_the_cause(node_env, daemon_factory):
    node_env.add_pod("tagged", "127.0.0.66", role="untagged-trust")
    node_env.sts.configure(deny_tag_session=[BASE_ARN + "untagged-trust"])
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--session-tags=kubernetes-namespace")
    r, body = answer(d, CREDS + "untagged-trust", "127.0.0.66")
    assert r.status == 500 and b"AccessDenied" in body and b"sts:TagSession" in body
    # no silent downgrade: no untagged call was made
    assert all(c["tags"] for c in node_env.sts.calls() if c.get("role_arn") == BASE_ARN + "untagged-trust")
    wait_until(lambda: "the role's trust policy must allow sts:TagSession" in d.output(), what="audit cause")


def test_packed_policy_too_large_is_a_500_with_the_code(node_env, daemon_factory):
    node_env.add_pod("big", "127.0.0.67", role=ROLE)
    node_env.sts.configure(packed_limit=10)
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--session-tags")
    r, body = answer(d, CREDS + ROLE, "127.0.0.67")
    assert r.status == 500 and b"PackedPolicyTooLarge" in body
    wait_until(lambda: "exceed STS's packed size limit" in d.output(), what="audit cause")


def test_namespace_adds_its_own_tags_to_the_nodes(node_env, daemon_factory):
    node_env.api.add_namespace("payments", annotations={
        "iam.amazonaws.com/session-tags": json.dumps({"team": "payments", "cost-center": "cc 42"})})
    node_env.add_pod("pay", "127.0.0.68", role=ROLE, namespace="payments")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--session-tags=kubernetes-namespace")
    wait_until(lambda: get(d, CREDS + ROLE, source="127.0.0.68")[0].status == 200, what="credentials")
    call = served_by_sts(node_env, BASE_ARN + ROLE)[-1]
    assert call["tags"] == {"kubernetes-namespace": "payments", "team": "payments", "cost-center": "cc 42"}
    assert sorted(call["transitive_tag_keys"]) == sorted(call["tags"])


def test_namespace_tags_that_claim_a_node_key_are_refused_and_its_pods_get_nothing(node_env, daemon_factory):
    node_env.api.add_namespace("sneaky", annotations={
        "iam.amazonaws.com/session-tags": json.dumps({"kubernetes-namespace": "payments"})})
    node_env.add_pod("spy", "127.0.0.69", role=ROLE, namespace="sneaky")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--session-tags=kubernetes-namespace")
    wait_until(lambda: "session-tags annotation is refused" in d.output(), what="the refusal")
    r, _ = get(d, CREDS + ROLE, source="127.0.0.69")
    assert r.status == 404
    assert served_by_sts(node_env, BASE_ARN + ROLE) == []


def test_pod_session_names_are_namespace_and_name_and_the_audit_maps_cloudtrail_back(node_env, daemon_factory):
    node_env.api.add_namespace("payments")
    node_env.add_pod("api-0", "127.0.0.1", role=ROLE, namespace="payments")
    node_env.add_pod("api-1", "127.0.0.70", role=ROLE, namespace="payments")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--session-name=pod")
    key = botocore_key(d)
    assert http_key(d, "127.0.0.70") != key  # one session per pod
    calls = {c["session_name"]: c for c in served_by_sts(node_env, BASE_ARN + ROLE)}
    assert sorted(calls) == ["payments.api-0", "payments.api-1"]
    assert calls["payments.api-0"]["access_key_id"] == key
    # the issuance's audit entry carries the key id and STS's AssumedRoleId (AROA...:session name)
    wait_until(lambda: key in d.output(), what="the audit entry")
    line = next(ln for ln in d.output().splitlines() if key in ln and "issued" in ln)
    assert "payments/api-0" in line
    assert f"access.key.id={key}" in line
    assert 'assumed.role.id="AROA' in line and ':payments.api-0"' in line


def test_long_pod_names_are_shortened_and_stay_distinct(node_env, daemon_factory):
    node_env.api.add_namespace("team-with-a-long-namespace-name")
    long_a, long_b = "worker-" + "x" * 50 + "-a", "worker-" + "x" * 50 + "-b"
    node_env.add_pod(long_a, "127.0.0.71", role=ROLE, namespace="team-with-a-long-namespace-name")
    node_env.add_pod(long_b, "127.0.0.72", role=ROLE, namespace="team-with-a-long-namespace-name")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--session-name=pod")
    assert http_key(d, "127.0.0.71") != http_key(d, "127.0.0.72")
    names = sorted(c["session_name"] for c in served_by_sts(node_env, BASE_ARN + ROLE))
    assert len(names) == 2 and names[0] != names[1]
    assert all(len(n) == 64 and n[51] == "=" for n in names)  # the fake STS accepted them: STS's rules hold


def test_namespace_policy_arns_narrow_its_sessions_and_are_part_of_the_key(node_env, daemon_factory):
    ro, deny = "arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::123456789012:policy/deny-s3-delete"
    node_env.api.add_namespace("narrow", annotations={"iam.amazonaws.com/session-policy-arns": json.dumps([ro, deny])})
    node_env.api.add_namespace("wide")
    node_env.add_pod("n", "127.0.0.73", role=ROLE, namespace="narrow")
    node_env.add_pod("w", "127.0.0.74", role=ROLE, namespace="wide")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--session-policies")
    assert http_key(d, "127.0.0.73") != http_key(d, "127.0.0.74")  # two sessions of one role
    calls = served_by_sts(node_env, BASE_ARN + ROLE)
    assert sorted(c["policy_arns"] for c in calls) == [[], sorted([ro, deny])]
    # a list STS would refuse is refused by the daemon: the namespace's pods get nothing
    node_env.api.add_namespace("narrow", annotations={"iam.amazonaws.com/session-policy-arns": '["nope"]'})
    wait_until(lambda: "session-policy-arns annotation is refused" in d.output(), what="the refusal")
    wait_until(lambda: get(d, CREDS + ROLE, source="127.0.0.73")[0].status == 404, what="the denial")

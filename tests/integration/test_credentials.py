# SPDX-License-Identifier: BSD-3-Clause
"""The credential service end to end on loopback: the daemon against the fake API server, STS and
IMDS (tests/fakes/node_env.py). Pods are loopback addresses (127.0.0.x): a client binding that
source address is that pod. awscli and botocore are the real clients."""

import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from k2i_testlib import assert_no_secrets, wait_namespaces, wait_until
from node_env import BASE_ARN

FAST = ["--backoff-max-elapsed-time=300ms", "--backoff-max-interval=100ms"]


def get(d, path, source="127.0.0.1", method="GET", headers=None, timeout=10):
    c = http.client.HTTPConnection(d.host, d.port, timeout=timeout, source_address=(source, 0))
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body



def start(node_env, daemon_factory, *extra, pods_synced=True):
    d = daemon_factory(node_env.daemon_args(*FAST, *extra))
    if pods_synced:
        wait_until(lambda: json.loads(get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    return d


def served_by_sts(env, role_arn):
    return [c for c in env.sts.calls() if c["role_arn"] == role_arn and c.get("result") == "Success"]


def aws_env(d):
    home = tempfile.mkdtemp(prefix="k2i-aws-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"HOME": home, "AWS_CONFIG_FILE": os.path.join(home, "none"),
                "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "none"),
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://{d.host}:{d.port}/",
                "AWS_DEFAULT_REGION": "us-east-1"})
    return env


def test_awscli_gets_the_pods_role_over_imdsv2(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.1", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r = subprocess.run(["/usr/bin/aws", "configure", "export-credentials", "--format", "env"],
                       env=aws_env(d), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    issued = served_by_sts(node_env, BASE_ARN + "app-role")
    assert issued, node_env.sts.calls()
    keys = {c["access_key_id"] for c in issued}
    line = [x for x in r.stdout.splitlines() if "AWS_ACCESS_KEY_ID" in x][0]
    assert line.split("=", 1)[1] in keys
    # it went through IMDSv2: the daemon minted a token
    m = get(d, "/metrics")[1].decode()
    assert "kube2iam_imds_tokens_issued_total 1" in m or "kube2iam_imds_tokens_issued_total 2" in m
    assert_no_secrets(d.output(), node_env)


def test_botocore_gets_credentials_and_session_name_is_kube2iams(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.1", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    code = ("import botocore.session, json; c = botocore.session.get_session().get_credentials();"
            "f = c.get_frozen_credentials(); print(json.dumps([c.method, f.access_key]))")
    r = subprocess.run(["/usr/bin/python3", "-c", code], env=aws_env(d), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    method, key = json.loads(r.stdout)
    assert method == "iam-role"
    call = served_by_sts(node_env, BASE_ARN + "app-role")[0]
    assert key == call["access_key_id"]
    # fnv32a("127.0.0.1") in hex, '-', the role name
    assert call["session_name"].endswith("-app-role")
    assert call["duration"] == "3600"  # 2 x the 30m default TTL


def test_imdsv1_role_list_and_credentials(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.2", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, body = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.2")
    assert r.status == 200 and body == b"app-role"
    assert r.getheader("Server") == "EC2ws"
    r, body = get(d, "/latest/meta-data/iam/security-credentials", source="127.0.0.2")
    assert r.status == 200 and body == b"app-role"
    r, body = get(d, "/latest/meta-data/iam/security-credentials/app-role", source="127.0.0.2")
    assert r.status == 200, body
    doc = json.loads(body)
    assert list(doc) == ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
    assert doc["Code"] == "Success" and doc["Type"] == "AWS-HMAC"
    assert doc["Expiration"].endswith("Z") and "." not in doc["Expiration"]
    call = served_by_sts(node_env, BASE_ARN + "app-role")[-1]
    assert doc["AccessKeyId"] == call["access_key_id"]
    assert doc["SecretAccessKey"] == call["secret_access_key"]
    assert doc["Token"] == call["session_token"]
    # at least 30 minutes of life (docs/compatibility.md), far from botocore's 15-minute stretch
    exp = time.mktime(time.strptime(doc["Expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert exp - time.time() > 30 * 60


def test_default_role_cross_account_and_path_roles(node_env, daemon_factory):
    node_env.add_pod("plain", "127.0.0.3")
    node_env.add_pod("cross", "127.0.0.4", role="arn:aws:iam::999999999999:role/other-account")
    node_env.add_pod("path", "127.0.0.5", role="team/sub/path-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--default-role=fallback")
    assert get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.3")[1] == b"fallback"
    assert get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.4")[1] == \
        b"arn:aws:iam::999999999999:role/other-account"
    assert get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.5")[1] == b"team/sub/path-role"
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/arn:aws:iam::999999999999:role/other-account",
               source="127.0.0.4")
    assert r.status == 200
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/team/sub/path-role", source="127.0.0.5")
    assert r.status == 200
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/fallback", source="127.0.0.3")
    assert r.status == 200


def test_unannotated_pod_without_default_role_gets_404(node_env, daemon_factory):
    node_env.add_pod("plain", "127.0.0.6")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, body = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.6")
    assert r.status == 404 and body == b"unable to find role for IP 127.0.0.6\n"


def test_unknown_address_gets_404_after_the_budget_and_nothing_else(node_env, daemon_factory):
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    t = time.monotonic()
    r, body = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.99")
    assert r.status == 404 and body == b'pod with specificed IP "127.0.0.99" not found\n'
    assert time.monotonic() - t < 5
    r, body = get(d, "/latest/meta-data/iam/security-credentials/node-role", source="127.0.0.99")
    assert r.status == 404
    assert not node_env.sts.calls()


def test_wrong_role_is_403(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.7", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, body = get(d, "/latest/meta-data/iam/security-credentials/admin", source="127.0.0.7")
    assert r.status == 403 and body == b"Invalid role admin\n"
    assert "Invalid role: does not match annotated role" in d.output()


@pytest.mark.parametrize("fmt,allowed,role,ok", [
    ("glob", '["team-*"]', "team-a", True),
    ("glob", '["team-*"]', "other", False),
    ("glob", '[]', "team-a", False),
    ("glob", 'not json', "team-a", False),
    ("regexp", '["team-\\\\d+"]', "team-12", True),
    ("regexp", '["team-\\\\d+"]', "team-x", False),
    ("regexp", '["^team-1$"]', "team-1", False),  # kube2iam #341: prefixed with the base ARN
])
def test_namespace_restrictions(node_env, daemon_factory, fmt, allowed, role, ok):
    node_env.api.add_namespace("restricted", {"iam.amazonaws.com/allowed-roles": allowed})
    node_env.add_pod("app", "127.0.0.8", role=role, namespace="restricted")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--namespace-restrictions",
              f"--namespace-restriction-format={fmt}")
    wait_namespaces(d)
    r, body = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.8")
    if ok:
        assert r.status == 200 and body == role.encode()
        r, _ = get(d, f"/latest/meta-data/iam/security-credentials/{role}", source="127.0.0.8")
        assert r.status == 200
    else:
        assert r.status == 404
        assert body == (f"role requested {BASE_ARN}{role} not valid for namespace of pod at 127.0.0.8 "
                        "with namespace restricted\n").encode()
        assert not served_by_sts(node_env, BASE_ARN + role)


def test_default_role_bypasses_namespace_restrictions(node_env, daemon_factory):
    node_env.api.add_namespace("locked", {"iam.amazonaws.com/allowed-roles": "[]"})
    node_env.add_pod("plain", "127.0.0.9", namespace="locked")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--namespace-restrictions",
              "--default-role=fallback")
    r, body = get(d, "/latest/meta-data/iam/security-credentials/fallback", source="127.0.0.9")
    assert r.status == 200


def test_new_pod_is_prefetched_before_its_first_request(node_env, daemon_factory):
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    node_env.add_pod("late", "127.0.0.10", role="late-role")
    wait_until(lambda: served_by_sts(node_env, BASE_ARN + "late-role"), what="prefetch STS call")
    n = len(node_env.sts.calls())
    r, body = get(d, "/latest/meta-data/iam/security-credentials/late-role", source="127.0.0.10")
    assert r.status == 200
    assert len(node_env.sts.calls()) == n  # answered from memory
    assert "kube2iam_iam_prefetches_total" in get(d, "/metrics")[1].decode()


def test_request_before_the_pod_appears_waits_and_is_answered_when_it_does(node_env, daemon_factory):
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--backoff-max-elapsed-time=5s")
    result = []
    t = threading.Thread(target=lambda: result.append(
        get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.11")))
    t.start()
    time.sleep(0.5)
    node_env.add_pod("job", "127.0.0.11", role="job-role")
    t.join(10)
    r, body = result[0]
    assert r.status == 200 and body == b"job-role"


def test_deleted_pod_is_refused(node_env, daemon_factory):
    uid = node_env.add_pod("gone", "127.0.0.12", role="gone-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    assert get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.12")[0].status == 200
    node_env.api.delete_pod(uid)
    wait_until(lambda: get(d, "/latest/meta-data/iam/security-credentials/",
                           source="127.0.0.12")[0].status == 404, what="deleted pod refused")


def test_pod_ip_reuse_never_serves_old_role(node_env, daemon_factory):
    old = node_env.add_pod("old", "127.0.0.13", role="old-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    assert get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.13")[1] == b"old-role"
    # the old pod is terminating when the new one gets its address: the live one wins
    node_env.api.update_pod(old, deleting=True)
    node_env.add_pod("new", "127.0.0.13", role="new-role")
    wait_until(lambda: get(d, "/latest/meta-data/iam/security-credentials/",
                           source="127.0.0.13")[1] == b"new-role", what="new pod served")
    node_env.api.delete_pod(old)
    for _ in range(20):
        r, body = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.13")
        assert body == b"new-role"
        r, body = get(d, "/latest/meta-data/iam/security-credentials/old-role", source="127.0.0.13")
        assert r.status == 403


def test_imdsv2_required_refuses_requests_without_a_token(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.14", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--imdsv2-required")
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.14")
    assert r.status == 401
    r, _ = get(d, "/latest/meta-data/instance-id", source="127.0.0.14")
    assert r.status == 401
    r, token = get(d, "/latest/api/token", source="127.0.0.14", method="PUT",
                   headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
    assert r.status == 200
    h = {"X-aws-ec2-metadata-token": token.decode()}
    r, body = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.14", headers=h)
    assert r.status == 200 and body == b"app-role"
    # the token is bound to the pod's address
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.15", headers=h)
    assert r.status == 401
    for bad in ("0", "21601", "abc", ""):
        r, _ = get(d, "/latest/api/token", source="127.0.0.14", method="PUT",
                   headers={"X-aws-ec2-metadata-token-ttl-seconds": bad})
        assert r.status == 400, bad
    r, _ = get(d, "/2021-03-23/api/token", source="127.0.0.14", method="PUT",
               headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert r.status == 403


def test_iam_info_answers_for_the_pods_role_never_the_node(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.16", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, body = get(d, "/latest/meta-data/iam/info", source="127.0.0.16")
    assert r.status == 200
    doc = json.loads(body)
    assert doc["Code"] == "Success"
    assert doc["InstanceProfileArn"] == "arn:aws:iam::123456789012:instance-profile/app-role"
    assert doc["InstanceProfileId"].startswith("AIPA")
    assert "node-role" not in body.decode()
    assert not [q for q in node_env.imds.requests() if q["path"].endswith("/iam/info")]


def test_explicit_proxy_mode(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.17", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, body = get(d, "http://169.254.169.254/latest/meta-data/iam/security-credentials/", source="127.0.0.17")
    assert r.status == 200 and body == b"app-role"
    r, body = get(d, "http://example.com/", source="127.0.0.17")
    assert r.status == 403 and b"metadata service" in body
    with socket.create_connection((d.host, d.port), timeout=5) as s:
        s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 405")


def test_metadata_allow_limits_proxied_paths(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.18", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--metadata-allow=/latest/meta-data/placement/*")
    assert get(d, "/latest/meta-data/placement/region", source="127.0.0.18")[0].status == 200
    assert get(d, "/latest/meta-data/instance-id", source="127.0.0.18")[0].status == 404
    assert get(d, "/latest/user-data", source="127.0.0.18")[0].status == 404


def test_hundred_concurrent_cold_requests_make_one_sts_call(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.19", role="cold-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--prefetch=false")
    node_env.sts.configure(delay=0.5)
    results = []
    lock = threading.Lock()

    def one():
        r, body = get(d, "/latest/meta-data/iam/security-credentials/cold-role", source="127.0.0.19", timeout=20)
        with lock:
            results.append((r.status, json.loads(body)["AccessKeyId"] if r.status == 200 else body))

    threads = [threading.Thread(target=one) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 100 and all(s == 200 for s, _ in results), results[:3]
    assert len({k for _, k in results}) == 1
    assert len([c for c in node_env.sts.calls() if c["role_arn"] == BASE_ARN + "cold-role"]) == 1


def test_prepared_document_follows_new_credentials_and_each_api_keeps_its_own(node_env, daemon_factory):
    """The document is rendered once per set of credentials: repeated requests get the same bytes,
    the extended API its own document with AccountId, and the credentials of a refresh replace both."""
    role = BASE_ARN + "doc-role"
    node_env.add_pod("app", "127.0.0.21", role="doc-role")
    # the first credentials live 4 s: the cache refreshes them in the background halfway through
    node_env.sts.configure(expires_in=4)
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--prefetch=false")
    plain = "/latest/meta-data/iam/security-credentials/doc-role"
    extended = "/latest/meta-data/iam/security-credentials-extended/doc-role"

    def doc(path):
        r, body = get(d, path, source="127.0.0.21")
        assert r.status == 200, body
        return body, json.loads(body)

    body, first = doc(plain)
    node_env.sts.configure(expires_in=None)
    call = served_by_sts(node_env, role)[0]
    assert first["AccessKeyId"] == call["access_key_id"] and first["Token"] == call["session_token"]
    assert "AccountId" not in first
    _, ext = doc(extended)
    assert ext["AccountId"] == "123456789012" and ext["AccessKeyId"] == call["access_key_id"]
    wait_until(lambda: len(served_by_sts(node_env, role)) == 2, what="the background refresh")
    call = served_by_sts(node_env, role)[1]
    # the fake records the call before the daemon has read its reply: wait for the swap
    wait_until(lambda: doc(plain)[1]["AccessKeyId"] == call["access_key_id"],
               what="the refreshed credentials served")
    body, cached = doc(plain)
    assert cached["AccessKeyId"] == call["access_key_id"] and cached["Token"] == call["session_token"]
    assert cached["SecretAccessKey"] == call["secret_access_key"] and "AccountId" not in cached
    ext_body, ext = doc(extended)
    assert {k: v for k, v in ext.items() if k != "AccountId"} == cached and ext["AccountId"] == "123456789012"
    for _ in range(3):
        assert doc(plain)[0] == body and doc(extended)[0] == ext_body
    assert len(served_by_sts(node_env, role)) == 2


@pytest.mark.parametrize("mode", ["throttle", "error500", "hang"])
def test_cached_credentials_are_served_while_sts_fails(node_env, daemon_factory, mode):
    node_env.add_pod("app", "127.0.0.20", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, body = get(d, "/latest/meta-data/iam/security-credentials/app-role", source="127.0.0.20")
    assert r.status == 200
    key = json.loads(body)["AccessKeyId"]
    node_env.sts.configure(mode=mode)
    for _ in range(5):
        r, body = get(d, "/latest/meta-data/iam/security-credentials/app-role", source="127.0.0.20")
        assert r.status == 200 and json.loads(body)["AccessKeyId"] == key


def test_denied_role_is_an_error_and_not_retried_in_a_loop(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.21", role="denied-role")
    node_env.sts.configure(deny_roles=[BASE_ARN + "denied-role"])
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--iam-role-error-ttl=1m")
    r, body = get(d, "/latest/meta-data/iam/security-credentials/denied-role", source="127.0.0.21")
    assert r.status == 500 and b"AccessDenied" in body
    n = len(node_env.sts.calls())
    time.sleep(2)
    for _ in range(5):
        r, body = get(d, "/latest/meta-data/iam/security-credentials/denied-role", source="127.0.0.21")
        assert r.status == 500
    assert len(node_env.sts.calls()) == n  # the error TTL answers, nothing loops
    assert "STS" in d.output() or "sts-error" in d.output()


def test_external_id_is_passed_to_sts(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.22", role="ext-role", external_id="ext-12345")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/ext-role", source="127.0.0.22")
    assert r.status == 200
    assert served_by_sts(node_env, BASE_ARN + "ext-role")[-1]["external_id"] == "ext-12345"


def test_debug_store_has_kube2iams_shape_and_no_secret(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.23", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--debug")
    get(d, "/latest/meta-data/iam/security-credentials/app-role", source="127.0.0.23")
    r, body = get(d, "/debug/store")
    assert r.status == 200
    doc = json.loads(body)
    assert set(doc) == {"namespaceByIP", "rolesByIP", "rolesByNamespace"}
    assert doc["rolesByIP"]["127.0.0.23"] == "app-role"
    assert doc["namespaceByIP"]["127.0.0.23"] == "default"
    for s in node_env.secrets():
        assert s not in body.decode()


def test_metrics_exposition_parses_and_has_kube2iams_names(node_env, daemon_factory):
    from prometheus_client.parser import text_string_to_metric_families
    node_env.add_pod("app", "127.0.0.24", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    get(d, "/latest/meta-data/iam/security-credentials/app-role", source="127.0.0.24")
    get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.24")
    r, body = get(d, "/metrics")
    assert r.status == 200
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in ("kube2iam_http_request_duration_seconds", "kube2iam_iam_request_duration_seconds",
                 "kube2iam_iam_cache_hits", "kube2iam_healthcheck_status", "kube2iam_info",
                 "kube2iam_iam_k8s_dup_req_count", "kube2iam_iam_k8s_dup_req_success_count",
                 "kube2iam_iam_k8s_pod_not_in_pod_cache"):
        assert name in families, (name, sorted(families))
    handlers = {s.labels.get("handler") for s in families["kube2iam_http_request_duration_seconds"].samples}
    assert {"roleHandler", "securityCredentialsHandler"} <= handlers
    for s in node_env.secrets():
        assert s not in body.decode()


def test_metrics_have_gos_process_series_and_a_filled_in_info(node_env, daemon_factory):
    from prometheus_client.parser import text_string_to_metric_families
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, body = get(d, "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    value = {n: families[n].samples[0].value for n in (
        "process_cpu_seconds", "process_open_fds", "process_max_fds", "process_virtual_memory_bytes",
        "process_resident_memory_bytes", "process_start_time_seconds")}
    assert families["process_cpu_seconds"].type == "counter"
    assert value["process_open_fds"] >= 3 and value["process_max_fds"] >= value["process_open_fds"]
    assert 0 < value["process_resident_memory_bytes"] < value["process_virtual_memory_bytes"]
    assert abs(value["process_start_time_seconds"] - time.time()) < 600
    info = families["kube2iam_info"].samples[0].labels
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["build_date"])
    assert re.fullmatch(r"[0-9a-f]{7,40}|unknown", info["commit_hash"]) and info["version"]


def test_metrics_on_a_separate_port(node_env, daemon_factory):
    from k2i_testlib import free_port
    port = free_port()
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", f"--metrics-port={port}")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    r = c.getresponse()
    assert r.status == 200 and b"kube2iam_info" in r.read()
    # and not on the app port, where /metrics is proxied as kube2iam does
    assert get(d, "/metrics")[0].status == 404


def test_no_secret_reaches_the_log_even_at_debug(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.25", role="app-role")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--verbose")
    for _ in range(3):
        get(d, "/latest/meta-data/iam/security-credentials/app-role", source="127.0.0.25")
    d.stop()
    out = d.output()
    assert "result=issued" in out  # the audit entry is there
    assert_no_secrets(out, node_env)


def test_auto_discover_base_arn_and_default_role_from_the_instance_metadata(node_env, daemon_factory):
    # the fake IMDS's iam/info names instance-profile/node-role in account 123456789012
    node_env.add_pod("app", "127.0.0.26", role="app-role")
    node_env.add_pod("plain", "127.0.0.27")
    d = start(node_env, daemon_factory, "--auto-discover-default-role")
    assert "base ARN autodetected, " + BASE_ARN in d.output()
    r, body = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.26")
    assert r.status == 200 and body == b"app-role"  # relative to the discovered base ARN
    r, body = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.27")
    assert r.status == 200 and body == b"node-role"  # the instance's role is the default
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/node-role", source="127.0.0.27")
    assert r.status == 200
    assert served_by_sts(node_env, BASE_ARN + "node-role")


def test_auto_discovery_conflicts_and_failures_stop_the_daemon(node_env):
    import subprocess
    from k2i_testlib import binary, free_port
    r = subprocess.run([binary("kube2iam"), "--auto-discover-base-arn", f"--base-role-arn={BASE_ARN}"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--auto-discover-base-arn" in r.stderr
    node_env.imds.configure(status=500)
    r = subprocess.run([binary("kube2iam"), *node_env.daemon_args(), f"--app-port={free_port()}",
                        "--listen-address=127.0.0.1", "--auto-discover-base-arn"],
                       capture_output=True, text=True, timeout=60)
    # kube2iam dies when it cannot discover the base ARN; so do we, saying why
    assert r.returncode == 1, r.stderr
    assert "Failed to discover the base ARN" in r.stderr


def test_sts_failure_body_and_log_line_read_as_kube2iams(node_env, daemon_factory):
    node_env.add_pod("app", "127.0.0.26", role="denied-role")
    node_env.sts.configure(deny_roles=[BASE_ARN + "denied-role"])
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}")
    r, body = get(d, "/latest/meta-data/iam/security-credentials/denied-role", source="127.0.0.26")
    assert r.status == 500
    m = re.fullmatch(rb"operation error STS: AssumeRole, https response error StatusCode: 403, "
                     rb"RequestID: ([0-9a-f]+), api error AccessDenied: .+\n", body)
    assert m, body
    wait_until(lambda: "Error assuming role operation error STS: AssumeRole" in d.output(), what="log line")
    line = next(l for l in d.output().splitlines() if "Error assuming role" in l)
    assert "level=error" in line and m.group(1).decode() in line and "role.arn=" in line


def test_kube2iam_lines_people_grep_for_with_its_field_names(node_env, daemon_factory):
    node_env.api.add_namespace("restricted", {"iam.amazonaws.com/allowed-roles": '["allowed-*"]'})
    node_env.add_pod("app", "127.0.0.27", role="other-role", namespace="restricted")
    node_env.add_pod("plain", "127.0.0.28")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--namespace-restrictions",
              "--default-role=fallback", "--verbose")
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.27")
    assert r.status == 404
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.28")
    assert r.status == 200
    r, _ = get(d, "/latest/meta-data/iam/security-credentials/wrong", source="127.0.0.28")
    assert r.status == 403
    node_env.api.delete_namespace("restricted")
    wait_until(lambda: "Deleting namespace (OnDelete)" in d.output(), what="namespace delete line")
    out = d.output().splitlines()

    def line(text):
        found = [l for l in out if text in l]
        assert found, (text, out)
        return found[0]
    assert "ns.name=restricted" in line("Discovered role on namespace (OnAdd)")
    assert 'ns.role="allowed-*"' in line("Discovered role on namespace (OnAdd)")  # the raw pattern
    assert "level=warning" in line(f"Role: {BASE_ARN}other-role on namespace: restricted not found.")
    assert "level=warning" in line("Using fallback role for IP 127.0.0.28")
    invalid = line("Invalid role: does not match annotated role")
    for field in ("ns.name=default", f"pod.iam.role=\"{BASE_ARN}fallback\"", "params.iam.role=wrong"):
        assert field in invalid, invalid
    req = line("GET /latest/meta-data/iam/security-credentials/wrong (403) took")
    for field in ("req.method=GET", "req.path=/latest/meta-data/iam/security-credentials/wrong",
                  "req.remote=127.0.0.28", "res.status=403", "res.duration="):
        assert field in req, req
    assert "MESSAGE_ID" not in d.output() and "REQ_METHOD" not in d.output()


def test_empty_role_annotation_under_namespace_restrictions_is_404_and_debug_store_shows_empty_list(
        node_env, daemon_factory):
    # kube2iam: an empty annotation is the bare base ARN, equal to its bare-base-ARN "default", which
    # bypassed the restrictions (an empty 200); here it is refused like any role the namespace lacks
    node_env.api.add_namespace("restricted", {"iam.amazonaws.com/allowed-roles": "[]"})
    node_env.add_pod("blank", "127.0.0.29", role="", namespace="restricted")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--namespace-restrictions", "--debug")
    r, body = get(d, "/latest/meta-data/iam/security-credentials/", source="127.0.0.29")
    assert r.status == 404, body
    # the 404 does not wait for the namespace watch: wait for the namespace before reading the store
    def store():
        r, body = get(d, "/debug/store")
        assert r.getheader("Content-Type") == "application/json"
        return json.loads(body)["rolesByNamespace"]
    wait_until(lambda: "restricted" in store(), what="the namespace in /debug/store")
    assert store()["restricted"] == []


@pytest.mark.parametrize("late_kubeconfig", [False, True], ids=["kubeconfig-at-start", "kubeconfig-later"])
def test_node_name_comes_from_the_kubelet_certificate_when_node_is_not_given(daemon_factory, late_kubeconfig):
    """The API server knows the node by its certificate's system:node:<name>, which differs from
    the host name under kubelet's --hostname-override: without --node, the pod on that node is
    found (and served) only if the daemon took the name from the certificate. kubelet's TLS
    bootstrap may write the kubeconfig after kube2iam started: the name is read when it appears."""
    from node_env import NodeEnv

    node = "ip-10-9-8-7.eu-west-1.compute.internal"
    env = NodeEnv(node=node, kubeconfig=not late_kubeconfig)
    try:
        assert socket.gethostname().lower() != node
        env.add_pod("app", "127.0.0.1", role="app-role")
        args = [a for a in env.daemon_args(*FAST, f"--base-role-arn={BASE_ARN}") if not a.startswith("--node")]
        d = daemon_factory(args, default_node=False)
        if late_kubeconfig:
            wait_until(lambda: "Waiting for kubeconfig" in d.output(), what="the daemon waiting for it")
            env.write_kubeconfig()
        wait_until(lambda: json.loads(get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
        r, body = get(d, "/latest/meta-data/iam/security-credentials/")
        assert (r.status, body) == (200, b"app-role")
        assert f"Node name {node} from the client certificate" in d.output()
    finally:
        env.stop()


def test_node_given_wins_over_the_kubelet_certificate(daemon_factory):
    from node_env import NodeEnv

    env = NodeEnv(node="node-1")
    try:
        d = daemon_factory(env.daemon_args(*FAST, "--node=another-node"))
        wait_until(lambda: env.api.n_watches("pods") >= 1, what="pod watch")
        assert "from the client certificate" not in d.output()
        with env.api.lock:
            pods = [w.selector for w in env.api.watches if w.kind == "pods"]
        assert pods and all(s.get("spec.nodeName") == "another-node" for s in pods), pods
    finally:
        env.stop()

# SPDX-License-Identifier: BSD-3-Clause
"""Where a pod's role comes from besides its annotation (docs/sessions.md): its ServiceAccount's
IRSA annotation (--service-account-roles), its namespace's default role (--namespace-default-roles),
then --default-role; namespace restrictions hold for each, and ServiceAccounts the daemon may not
read give no role at all. The daemon runs against the fake API server, STS and IMDS on loopback;
botocore and plain HTTP are the pods' clients."""

import json

from k2i_testlib import wait_until
from node_env import BASE_ARN
from test_credentials import get, served_by_sts, start
from test_explain import explain_json, runtime_dir  # noqa: F401 (a fixture)
from test_doctor import doctor
from test_explain import start as explain_start
from test_sessions import botocore_key

CREDS = "/latest/meta-data/iam/security-credentials/"
IRSA = "eks.amazonaws.com/role-arn"
NS_DEFAULT = "iam.amazonaws.com/default-role"


def role_of(d, source):
    """The role list's answer for the pod at source: (status, body)."""
    r, body = get(d, CREDS, source=source)
    return r.status, body.decode()


def test_pod_without_annotation_gets_its_service_accounts_role_and_the_annotation_wins(node_env, daemon_factory):
    node_env.api.add_service_account("app", annotations={IRSA: BASE_ARN + "irsa-role"})
    node_env.add_pod("plain", "127.0.0.1", service_account="app")
    node_env.add_pod("annotated", "127.0.0.81", role="own-role", service_account="app")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--service-account-roles",
              "--default-role=fallback")
    key = botocore_key(d)
    calls = served_by_sts(node_env, BASE_ARN + "irsa-role")
    assert [c["access_key_id"] for c in calls] == [key]
    assert role_of(d, "127.0.0.81") == (200, "own-role")
    assert served_by_sts(node_env, BASE_ARN + "fallback") == []


def test_namespace_default_role_applies_to_unannotated_pods_before_the_default_role(node_env, daemon_factory):
    node_env.api.add_namespace("team", annotations={NS_DEFAULT: "team-role"})
    node_env.api.add_service_account("default", namespace="team")
    node_env.add_pod("t", "127.0.0.82", namespace="team")
    node_env.add_pod("other", "127.0.0.83")
    node_env.add_pod("mine", "127.0.0.84", role="own-role", namespace="team")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--namespace-default-roles",
              "--service-account-roles", "--default-role=fallback")
    wait_until(lambda: role_of(d, "127.0.0.82") == (200, "team-role"), what="the namespace's default role")
    assert role_of(d, "127.0.0.83") == (200, "fallback")
    assert role_of(d, "127.0.0.84") == (200, "own-role")
    r, body = get(d, CREDS + "team-role", source="127.0.0.82")
    assert r.status == 200 and json.loads(body)["Code"] == "Success"
    assert len(served_by_sts(node_env, BASE_ARN + "team-role")) == 1


def test_allowed_roles_still_restrict_service_account_and_namespace_default_roles(node_env, daemon_factory):
    node_env.api.add_namespace("locked", annotations={"iam.amazonaws.com/allowed-roles": '["allowed-*"]',
                                                      NS_DEFAULT: "not-allowed"})
    node_env.api.add_service_account("bad", namespace="locked", annotations={IRSA: BASE_ARN + "forbidden-sa"})
    node_env.api.add_service_account("good", namespace="locked", annotations={IRSA: BASE_ARN + "allowed-sa"})
    node_env.add_pod("bad", "127.0.0.85", namespace="locked", service_account="bad")
    node_env.add_pod("nsdef", "127.0.0.86", namespace="locked", service_account="plain")
    node_env.add_pod("good", "127.0.0.87", namespace="locked", service_account="good")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--namespace-restrictions",
              "--service-account-roles", "--namespace-default-roles")
    wait_until(lambda: role_of(d, "127.0.0.87") == (200, "allowed-sa"), what="the allowed ServiceAccount role")
    for ip, role in (("127.0.0.85", "forbidden-sa"), ("127.0.0.86", "not-allowed")):
        r, body = get(d, CREDS + role, source=ip)
        assert r.status == 404 and b"not valid for namespace" in body, (ip, body)
    assert served_by_sts(node_env, BASE_ARN + "forbidden-sa") == []
    assert served_by_sts(node_env, BASE_ARN + "not-allowed") == []


def test_service_account_annotation_change_gives_the_new_role_on_the_next_request(node_env, daemon_factory):
    node_env.api.add_service_account("app", annotations={IRSA: BASE_ARN + "first"})
    node_env.add_pod("p", "127.0.0.88", service_account="app")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--service-account-roles")
    wait_until(lambda: role_of(d, "127.0.0.88") == (200, "first"), what="the first role")
    r, body = get(d, CREDS + "first", source="127.0.0.88")
    first_key = json.loads(body)["AccessKeyId"]
    node_env.api.add_service_account("app", annotations={IRSA: BASE_ARN + "second"})
    wait_until(lambda: role_of(d, "127.0.0.88") == (200, "second"), what="the new role")
    r, body = get(d, CREDS + "second", source="127.0.0.88")
    assert r.status == 200
    assert json.loads(body)["AccessKeyId"] == served_by_sts(node_env, BASE_ARN + "second")[-1]["access_key_id"]
    assert json.loads(body)["AccessKeyId"] != first_key
    # the old role is the pod's no more
    assert get(d, CREDS + "first", source="127.0.0.88")[0].status == 403
    # the annotation removed: no role (no --default-role here)
    node_env.api.add_service_account("app")
    wait_until(lambda: role_of(d, "127.0.0.88")[0] == 404, what="no role")


def test_service_accounts_forbidden_give_a_clear_message_and_no_role_not_even_the_default(node_env, daemon_factory):
    node_env.api.forbid_service_accounts = True
    node_env.api.add_service_account("app", annotations={IRSA: BASE_ARN + "irsa-role"})
    node_env.add_pod("plain", "127.0.0.89", service_account="app")
    node_env.add_pod("annotated", "127.0.0.90", role="own-role", service_account="app")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--service-account-roles",
              "--default-role=fallback")
    wait_until(lambda: "may not list and watch serviceaccounts (403" in d.output(), what="the 403 line")
    line = next(ln for ln in d.output().splitlines() if "may not list and watch serviceaccounts" in ln)
    assert "contrib/rbac" in line and "list and watch on serviceaccounts" in line
    r, body = get(d, CREDS, source="127.0.0.89")
    assert r.status == 404, body
    r, body = get(d, CREDS + "fallback", source="127.0.0.89")
    assert r.status == 404, body
    assert served_by_sts(node_env, BASE_ARN + "fallback") == []
    wait_until(lambda: "ServiceAccounts may not be read" in d.output(), what="the denial's audit entry")
    # pods with a role annotation are still served
    assert role_of(d, "127.0.0.90") == (200, "own-role")
    # the status and the metric name the grant
    _, metrics = get(d, "/metrics")
    assert b'kube2iam_watch_forbidden{resource="serviceaccounts"} 1' in metrics
    # granted later: the next list (KUBE_FORBIDDEN_RETRY_USEC) would serve it; not waited for here


def test_issued_audit_entry_carries_the_session_tag_values(node_env, daemon_factory):
    node_env.api.add_namespace("payments", annotations={
        "iam.amazonaws.com/session-tags": json.dumps({"team": "pay ments"})})
    node_env.add_pod("pay", "127.0.0.91", role="tagged", namespace="payments", service_account="pay-sa")
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}",
              "--session-tags=kubernetes-namespace,kubernetes-service-account")
    wait_until(lambda: get(d, CREDS + "tagged", source="127.0.0.91")[0].status == 200, what="credentials")
    wait_until(lambda: any("issued" in ln and "payments/pay" in ln for ln in d.output().splitlines()),
               what="the issued audit entry")
    line = next(ln for ln in d.output().splitlines() if "issued" in ln and "payments/pay" in ln)
    assert ('session.tags="kubernetes-namespace=payments,kubernetes-service-account=pay-sa,team=pay ments"'
            in line), line


def test_a_request_before_the_service_account_list_waits_for_it(node_env, daemon_factory):
    node_env.api.add_service_account("app", annotations={IRSA: BASE_ARN + "irsa-role"})
    node_env.add_pod("early", "127.0.0.92", service_account="app")
    # the ServiceAccount list fails five times (backoff 0.5 s doubling, jittered: 7.75 s at least)
    node_env.api.error_only = "/api/v1/serviceaccounts"
    node_env.api.error_next = 5
    d = start(node_env, daemon_factory, f"--base-role-arn={BASE_ARN}", "--service-account-roles",
              "--default-role=fallback", "--backoff-max-elapsed-time=60s")
    assert node_env.api.error_next > 0  # the pods are synced, the ServiceAccounts are not
    r, body = get(d, CREDS, source="127.0.0.92", timeout=90)
    assert node_env.api.error_next == 0
    assert (r.status, body) == (200, b"irsa-role")


def test_explain_names_the_service_account_or_the_namespace_default_as_the_source(node_env, daemon_factory,
                                                                                   runtime_dir):
    node_env.api.add_namespace("team", annotations={NS_DEFAULT: "team-role"})
    node_env.api.add_service_account("app", namespace="team", annotations={IRSA: BASE_ARN + "irsa-role"})
    node_env.add_pod("sa-pod", "127.0.0.93", namespace="team", service_account="app")
    node_env.add_pod("ns-pod", "127.0.0.94", namespace="team")
    explain_start(node_env, daemon_factory, runtime_dir, "--service-account-roles", "--namespace-default-roles")
    wait_until(lambda: explain_json(runtime_dir, "team/sa-pod")[1]["rule"]["source"] == "service-account",
               what="the ServiceAccount as the source")
    _, sa = explain_json(runtime_dir, "team/sa-pod")
    assert sa["role"] == BASE_ARN + "irsa-role" and "ServiceAccount team/app" in sa["rule"]["from"]
    _, ns = explain_json(runtime_dir, "team/ns-pod")
    assert ns["role"] == BASE_ARN + "team-role" and ns["rule"]["source"] == "namespace-default-role"
    assert "iam.amazonaws.com/default-role" in ns["rule"]["from"]


def test_doctor_names_the_serviceaccounts_grant(node_env, daemon_factory, runtime_dir):
    node_env.api.forbid_service_accounts = True
    node_env.api.deny_access = {("list", "serviceaccounts")}
    d = explain_start(node_env, daemon_factory, runtime_dir, "--service-account-roles")
    wait_until(lambda: "may not list and watch serviceaccounts" in d.output(), what="the 403 line")
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", *node_env.daemon_args("--service-account-roles"))
    assert rc == 1
    assert lines["rbac"][0] == "FAIL" and "may not list serviceaccounts" in lines["rbac"][1]
    assert "namespaces-for-nodes.yaml" in lines["rbac"][1]
    assert "serviceaccounts" in [a["resource"] for a in node_env.api.access_reviews]
    assert lines["daemon"][0] == "FAIL" and "ServiceAccount list (403)" in lines["daemon"][1]

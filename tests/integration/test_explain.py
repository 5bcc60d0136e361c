# SPDX-License-Identifier: BSD-3-Clause
"""`kube2iam explain`: the daemon's answer, over its unix socket in $RUNTIME_DIRECTORY, to "why does
this pod get this role, or none". One test per verdict, against the fake API server and STS
(tests/fakes/node_env.py); pods are loopback addresses (127.0.0.x)."""

import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from k2i_testlib import binary, http_get, wait_namespaces, wait_until
from node_env import BASE_ARN


@pytest.fixture
def runtime_dir():
    d = tempfile.mkdtemp(prefix="k2i-explain-")
    os.chmod(d, 0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start(node_env, daemon_factory, runtime_dir, *extra):
    d = daemon_factory(node_env.daemon_args(f"--base-role-arn={BASE_ARN}", *extra),
                       env={"RUNTIME_DIRECTORY": runtime_dir})
    wait_until(lambda: json.loads(http_get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    wait_until(lambda: os.path.exists(os.path.join(runtime_dir, "explain.sock")), what="explain socket")
    if "--namespace-restrictions" in extra:
        wait_namespaces(d)
    return d


def explain(runtime_dir, *args):
    env = dict(os.environ, RUNTIME_DIRECTORY=runtime_dir)
    return subprocess.run([binary("kube2iam"), "explain", *args], env=env, capture_output=True, text=True,
                          timeout=30)


def explain_json(runtime_dir, query):
    r = explain(runtime_dir, "--json", query)
    return r.returncode, json.loads(r.stdout)


def test_annotated_pod_gets_its_role_and_explain_shows_rule_cache_and_requests(node_env, daemon_factory,
                                                                                runtime_dir):
    node_env.add_pod("app", "127.0.0.2", role="app-role", namespace="team")
    d = start(node_env, daemon_factory, runtime_dir)
    status, _ = http_get(d, "/latest/meta-data/iam/security-credentials/app-role", source="127.0.0.2")
    assert status == 200

    rc, a = explain_json(runtime_dir, "team/app")
    assert rc == 0, a
    assert a["credentials"] is True
    assert a["role"] == BASE_ARN + "app-role"
    assert a["rule"]["source"] == "annotation"
    assert a["pod"]["addresses"] == ["127.0.0.2"]
    assert a["namespace"]["result"] == "not restricted"
    assert a["cache"]["state"] == "fresh" and a["cache"]["validUntil"] and a["cache"]["refreshAt"]
    assert a["requests"][0]["route"] == "roleHandler" and a["requests"][0]["status"] == 200

    r = explain(runtime_dir, "127.0.0.2")
    assert r.returncode == 0, r.stderr
    assert "rule:        annotation: pod annotation iam.amazonaws.com/role=app-role" in r.stdout
    assert "verdict:     credentials:" in r.stdout
    assert "requests:" in r.stdout and "roleHandler 200" in r.stdout
    # the credentials themselves never reach the answer
    for secret in node_env.secrets():
        assert secret not in r.stdout


def test_external_id_is_shown_as_set_never_its_value(node_env, daemon_factory, runtime_dir):
    node_env.add_pod("app", "127.0.0.9", role="app-role", external_id="s3cr3t-ext-id")
    start(node_env, daemon_factory, runtime_dir)
    r = explain(runtime_dir, "--json", "app")
    assert json.loads(r.stdout)["externalId"] is True
    assert "s3cr3t-ext-id" not in r.stdout
    assert "external id: set" in explain(runtime_dir, "app").stdout


def test_default_role_is_named_as_the_rule(node_env, daemon_factory, runtime_dir):
    node_env.add_pod("plain", "127.0.0.3")
    d = start(node_env, daemon_factory, runtime_dir, "--default-role=fallback")
    assert http_get(d, "/latest/meta-data/iam/security-credentials/fallback", source="127.0.0.3")[0] == 200
    rc, a = explain_json(runtime_dir, "plain")
    assert rc == 0, a
    assert a["role"] == BASE_ARN + "fallback"
    assert a["rule"]["source"] == "default-role"


def test_pod_without_role_or_default_gets_nothing(node_env, daemon_factory, runtime_dir):
    node_env.add_pod("plain", "127.0.0.3")
    start(node_env, daemon_factory, runtime_dir)
    rc, a = explain_json(runtime_dir, "default/plain")
    assert rc == 1
    assert a["role"] is None and a["rule"]["source"] == "none"
    assert "no role" in a["reason"]


def test_namespace_restriction_names_the_pattern_that_allowed(node_env, daemon_factory, runtime_dir):
    node_env.api.add_namespace("restricted", {"iam.amazonaws.com/allowed-roles": '["other", "app-*"]'})
    node_env.add_pod("app", "127.0.0.4", role="app-role", namespace="restricted")
    start(node_env, daemon_factory, runtime_dir, "--namespace-restrictions", "--namespace-restriction-format=glob")
    rc, a = explain_json(runtime_dir, "restricted/app")
    assert rc == 0, a
    assert a["namespace"]["result"] == "allowed by pattern"
    assert a["namespace"]["matched"] == "app-*"
    r = explain(runtime_dir, "restricted/app")
    assert 'namespace:   restricted: allowed by pattern "app-*"' in r.stdout


def test_namespace_restriction_denial_lists_the_patterns(node_env, daemon_factory, runtime_dir):
    node_env.api.add_namespace("restricted", {"iam.amazonaws.com/allowed-roles": '["other"]'})
    node_env.add_pod("app", "127.0.0.4", role="app-role", namespace="restricted")
    start(node_env, daemon_factory, runtime_dir, "--namespace-restrictions", "--namespace-restriction-format=glob")
    rc, a = explain_json(runtime_dir, "restricted/app")
    assert rc == 1
    assert a["credentials"] is False
    assert a["namespace"]["result"] == "denied: no pattern matches"
    assert a["namespace"]["allowedRoles"] == ["other"] and a["namespace"]["matched"] is None
    assert "namespace restriction denies" in a["reason"]


def test_unknown_address_and_pod_say_why(node_env, daemon_factory, runtime_dir):
    node_env.add_pod("host", "127.0.0.5", role="app-role", host_network=True)
    node_env.add_pod("done", "127.0.0.6", role="app-role", phase="Succeeded")
    start(node_env, daemon_factory, runtime_dir)

    rc, a = explain_json(runtime_dir, "127.0.0.99")
    assert rc == 1 and a["reason"].startswith("unknown address")
    rc, a = explain_json(runtime_dir, "default/elsewhere")
    assert rc == 1 and "not on this node" in a["reason"]
    rc, a = explain_json(runtime_dir, "default/host")
    assert rc == 1 and a["reason"].startswith("hostNetwork")
    rc, a = explain_json(runtime_dir, "default/done")
    assert rc == 1 and a["reason"].startswith("terminal phase")


def test_ambiguous_address_lists_the_pods(node_env, daemon_factory, runtime_dir):
    node_env.add_pod("one", "127.0.0.7", role="app-role")
    node_env.add_pod("two", "127.0.0.7", role="app-role")
    start(node_env, daemon_factory, runtime_dir)
    rc, a = explain_json(runtime_dir, "127.0.0.7")
    assert rc == 1
    assert "ambiguous" in a["reason"]
    assert sorted(a["candidates"]) == ["default/one", "default/two"]
    rc, a = explain_json(runtime_dir, "default/one")
    assert rc == 1 and "ambiguous" in a["reason"] and a["ambiguity"]


def test_sts_failure_shows_code_and_request_id(node_env, daemon_factory, runtime_dir):
    denied = BASE_ARN + "forbidden"
    node_env.sts.configure(deny_roles=[denied])
    node_env.add_pod("app", "127.0.0.8", role="forbidden")
    d = start(node_env, daemon_factory, runtime_dir)
    status, _ = http_get(d, "/latest/meta-data/iam/security-credentials/forbidden", source="127.0.0.8")
    assert status != 200
    rc, a = explain_json(runtime_dir, "app")
    assert rc == 1, a
    assert a["cache"]["lastError"]["code"] == "AccessDenied"
    assert a["cache"]["lastError"]["httpStatus"] == 403
    assert "STS" in a["reason"]
    r = explain(runtime_dir, "app")
    assert "last error:  AccessDenied (HTTP 403" in r.stdout


def test_socket_is_root_only(node_env, daemon_factory, runtime_dir):
    start(node_env, daemon_factory, runtime_dir)
    st = os.stat(os.path.join(runtime_dir, "explain.sock"))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()


def test_other_users_cannot_ask(node_env, daemon_factory, runtime_dir):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to ask as another user")
    start(node_env, daemon_factory, runtime_dir)
    # the directory's mode is not what keeps them out here: the socket's is
    os.chmod(runtime_dir, 0o755)
    env = dict(os.environ, RUNTIME_DIRECTORY=runtime_dir)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary("kube2iam"),
                        "explain", "127.0.0.2"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "Permission denied" in r.stderr


def test_without_daemon_or_with_bad_usage_the_exit_status_says_so(runtime_dir):
    r = explain(runtime_dir, "default/app")
    assert r.returncode == 3 and "cannot ask the daemon" in r.stderr
    assert explain(runtime_dir).returncode == 2
    assert explain(runtime_dir, "x" * 600).returncode == 2

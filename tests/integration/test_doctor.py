# SPDX-License-Identifier: BSD-3-Clause
"""`kube2iam doctor`: one line per check with its verdict and fix, exit 1 when one fails. Against
the fakes on loopback (tests/fakes/node_env.py); each check that can fail here fails once. The
redirect check reads the host's nftables (read-only): its verdict depends on the machine, so only
its line is asserted here."""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from k2i_testlib import binary, http_get, wait_until
from node_env import BASE_ARN


@pytest.fixture
def runtime_dir():
    d = tempfile.mkdtemp(prefix="k2i-doctor-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start(node_env, daemon_factory, runtime_dir, *extra, synced=True):
    d = daemon_factory(node_env.daemon_args(f"--base-role-arn={BASE_ARN}", *extra),
                       env={"RUNTIME_DIRECTORY": runtime_dir})
    if synced:
        wait_until(lambda: json.loads(http_get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    wait_until(lambda: os.path.exists(os.path.join(runtime_dir, "explain.sock")), what="explain socket")
    return d


def doctor(runtime_dir, *args, env=None):
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if k != "KUBE2IAM_ARGS" and not k.startswith("AWS_")}
    env.update(extra)
    env["RUNTIME_DIRECTORY"] = runtime_dir
    r = subprocess.run([binary("kube2iam"), "doctor", *args], env=env, capture_output=True, text=True, timeout=60)
    lines = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^(PASS|FAIL|SKIP) (\S+) +(.*)$", line)
        assert m, line
        lines[m.group(2)] = (m.group(1), m.group(3))
    return r.returncode, lines


def verdicts(lines):
    return {k: v[0] for k, v in lines.items()}


def test_every_check_has_a_line_and_the_daemon_side_passes(node_env, daemon_factory, runtime_dir):
    d = start(node_env, daemon_factory, runtime_dir)
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", *node_env.daemon_args())
    assert set(lines) == {"redirect", "imds", "sts", "node-credentials", "kubeconfig", "rbac", "daemon",
                          "socket-port", "pod-interfaces"}
    v = verdicts(lines)
    assert {k: v[k] for k in v if k != "redirect"} == dict.fromkeys(set(v) - {"redirect"}, "PASS"), lines
    assert "HttpTokens=" in lines["imds"][1]
    # exit 0 only if every check passed
    assert rc == (0 if v["redirect"] == "PASS" else 1)


@pytest.mark.parametrize("check,flag,says", [
    ("imds", "--metadata-addr=127.0.0.1:9", "gives no IMDSv2 token"),
    ("sts", "--sts-endpoint=http://127.0.0.1:9", "STS does not answer"),
])
def test_unreachable_upstream_fails_with_its_fix(node_env, daemon_factory, runtime_dir, check, flag, says):
    d = start(node_env, daemon_factory, runtime_dir)
    name = flag.split("=", 1)[0]
    args = [a for a in node_env.daemon_args() if not a.startswith(name)]
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", flag, *args)
    assert rc == 1
    assert lines[check][0] == "FAIL" and says in lines[check][1] and "-- fix: " in lines[check][1]


def test_socket_port_other_than_app_port_fails(node_env, daemon_factory, runtime_dir):
    d = start(node_env, daemon_factory, runtime_dir)
    rc, lines = doctor(runtime_dir, f"--app-port={d.port + 1 if d.port < 65535 else d.port - 1}",
                       *node_env.daemon_args())
    assert rc == 1
    assert lines["socket-port"][0] == "FAIL" and "ListenStream=" in lines["socket-port"][1]


def test_missing_kubeconfig_fails_and_skip_cluster_skips_it(node_env, daemon_factory, runtime_dir):
    d = start(node_env, daemon_factory, runtime_dir)
    missing = os.path.join(runtime_dir, "no-such-kubeconfig")
    args = [a for a in node_env.daemon_args() if not a.startswith("--kubeconfig")]
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", f"--kubeconfig={missing}", *args)
    assert rc == 1 and lines["kubeconfig"][0] == "FAIL"
    rc, lines = doctor(runtime_dir, "--skip-cluster", f"--app-port={d.port}", f"--kubeconfig={missing}", *args)
    assert lines["kubeconfig"][0] == "SKIP" and "--skip-cluster" in lines["kubeconfig"][1]
    assert lines["daemon"][0] == "PASS"


def test_daemon_not_running_fails(node_env, runtime_dir):
    rc, lines = doctor(runtime_dir, *node_env.daemon_args())
    assert rc == 1
    assert lines["daemon"][0] == "FAIL" and "systemctl start kube2iam" in lines["daemon"][1]


def test_daemon_not_synced_fails(node_env, daemon_factory, runtime_dir):
    node_env.api.stop()
    d = start(node_env, daemon_factory, runtime_dir, "--ready-sync-timeout=100ms", synced=False)
    seen = []

    def ready():
        seen[:] = [doctor(runtime_dir, f"--app-port={d.port}", *node_env.daemon_args())]
        return "not READY" not in seen[0][1]["daemon"][1]

    # READY comes after --ready-sync-timeout, without the pod list
    wait_until(ready, what="READY without a pod list")
    rc, lines = seen[0]
    assert rc == 1
    assert lines["daemon"][0] == "FAIL" and "not synced" in lines["daemon"][1]


def test_node_credentials_are_checked_with_get_caller_identity(node_env, daemon_factory, runtime_dir):
    d = start(node_env, daemon_factory, runtime_dir)
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", *node_env.daemon_args())
    assert lines["node-credentials"] == (
        "PASS", "the node's credentials (imds) are arn:aws:sts::123456789012:assumed-role/node/i-0123456789abcdef0")
    assert node_env.sts.state.identity_calls == 1
    # keys the fake STS does not know (as a stale AWS_* in the service's environment) fail it
    env = {"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1", "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", *node_env.daemon_args(), env=env)
    assert rc == 1
    verdict, what = lines["node-credentials"]
    assert verdict == "FAIL" and "STS refuses the node's credentials" in what and "(HTTP 403)" in what
    assert "wrong-secret" not in what
    rc, lines = doctor(runtime_dir, "--skip-cluster", f"--app-port={d.port}", *node_env.daemon_args())
    assert lines["node-credentials"][0] == "SKIP" and "--skip-cluster" in lines["node-credentials"][1]


def test_rbac_is_checked_with_self_subject_access_reviews(node_env, daemon_factory, runtime_dir):
    d = start(node_env, daemon_factory, runtime_dir)
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", *node_env.daemon_args())
    assert lines["rbac"] == ("PASS", "the kubeconfig's identity may list pods and namespaces")
    assert sorted(a["resource"] for a in node_env.api.access_reviews) == ["namespaces", "pods"]
    assert all(a["verb"] == "list" for a in node_env.api.access_reviews)
    # asked with the kubelet's client certificate
    assert {who for m, p, who in node_env.api.requests if "selfsubjectaccessreviews" in p} == {"cert"}
    node_env.api.deny_access = {("list", "pods")}
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", *node_env.daemon_args())
    assert rc == 1
    assert lines["rbac"][0] == "FAIL" and "may not list pods" in lines["rbac"][1] and "contrib/rbac" in lines["rbac"][1]
    rc, lines = doctor(runtime_dir, "--skip-cluster", f"--app-port={d.port}", *node_env.daemon_args())
    assert lines["rbac"][0] == "SKIP"


def test_namespaces_denied_fails_rbac_only_with_namespace_restrictions(node_env, daemon_factory, runtime_dir):
    d = start(node_env, daemon_factory, runtime_dir)
    node_env.api.deny_access = {("list", "namespaces")}
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", *node_env.daemon_args())
    assert lines["rbac"][0] == "PASS" and "not namespaces" in lines["rbac"][1]
    rc, lines = doctor(runtime_dir, f"--app-port={d.port}", "--namespace-restrictions", *node_env.daemon_args())
    assert lines["rbac"][0] == "FAIL" and "namespaces-for-nodes.yaml" in lines["rbac"][1]

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


def doctor(runtime_dir, *args):
    env = {k: v for k, v in os.environ.items() if k != "KUBE2IAM_ARGS"}
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
    assert set(lines) == {"redirect", "imds", "sts", "kubeconfig", "daemon", "socket-port", "pod-interfaces"}
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

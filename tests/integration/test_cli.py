# SPDX-License-Identifier: BSD-3-Clause
"""Flags: kube2iam's names and defaults, our additions, $KUBE2IAM_ARGS, one-line errors, exit 2."""

import os
import re
import subprocess

import pytest

from k2i_testlib import binary

KUBE2IAM_FLAGS = [
    "kubeconfig", "api-server", "api-token", "insecure", "app-port", "metrics-port", "base-role-arn",
    "default-role", "auto-discover-base-arn", "auto-discover-default-role", "iam-role-key", "iam-external-id",
    "iam-role-session-ttl", "iam-role-error-ttl", "namespace-restrictions", "namespace-restriction-format",
    "namespace-key", "cache-resync-period", "resolve-duplicate-cache-ips", "node", "host-ip", "host-interface",
    "iptables", "metadata-addr", "backoff-max-interval", "backoff-max-elapsed-time", "log-format", "log-level",
    "verbose", "debug", "use-regional-sts-endpoint", "version",
]
OUR_FLAGS = ["sts-endpoint", "listen-address", "imdsv2-required", "ready-sync-timeout", "pod-store-max-stale"]


def run(args, env=None):
    e = dict(os.environ)
    e.pop("KUBE2IAM_ARGS", None)
    e.update(env or {})
    return subprocess.run([binary("kube2iam")] + args, capture_output=True, text=True, env=e, timeout=10)


def test_help_lists_every_flag_with_defaults():
    r = run(["--help"])
    assert r.returncode == 0
    for f in KUBE2IAM_FLAGS + OUR_FLAGS:
        assert f"--{f}" in r.stdout, f
    assert "(default 8181)" in r.stdout
    assert '(default "iam.amazonaws.com/role")' in r.stdout
    assert "(default 30m0s)" in r.stdout  # --iam-role-session-ttl, changed on purpose
    assert '(default "docker0")' in r.stdout
    assert "(default 1m0s)" in r.stdout  # --pod-store-max-stale


def test_version_prints_version_commit_and_date_as_kube2iam_does():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "meson.build")) as f:
        text = f.read()
    version = text.split("version : '", 1)[1].split("'", 1)[0]
    r = run(["--version"])
    assert r.returncode == 0
    m = re.fullmatch(r"Version: (\S+) - Commit: ([0-9a-f]{7,40}|unknown) - Date: "
                     r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)", r.stdout.strip())
    assert m, r.stdout
    assert m.group(1) == version
    head = subprocess.run(["git", "-C", os.path.dirname(__file__), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode == 0:
        assert head.stdout.startswith(m.group(2))


@pytest.mark.parametrize("args,flag", [
    (["--bogus"], "--bogus"),
    (["--iam-role-session-ttl=15"], "--iam-role-session-ttl"),
    (["--iam-role-session-ttl=5m"], "--iam-role-session-ttl"),
    (["--iam-role-session-ttl=7h"], "--iam-role-session-ttl"),
    (["--backoff-max-interval=-1s"], "--backoff-max-interval"),
    (["--base-role-arn=arn:aws:s3:::bucket"], "--base-role-arn"),
    (["--app-port=0"], "--app-port"),
    (["--app-port=70000"], "--app-port"),
    (["--metrics-port=http"], "--metrics-port"),
    (["--log-level=loud"], "--log-level"),
    (["--host-ip=10.0.0"], "--host-ip"),
    (["--host-interface=cali+,bad/name"], "--host-interface"),
    (["--host-interface=averyveryverylongname"], "--host-interface"),
    (["--metadata-addr=169.254.169.254:99999"], "--metadata-addr"),
    (["--listen-address=localhost"], "--listen-address"),
    (["--sts-endpoint=sts.amazonaws.com"], "--sts-endpoint"),
    (["--verbose=maybe"], "--verbose"),
    (["--ready-sync-timeout=soon"], "--ready-sync-timeout"),
    (["--pod-store-max-stale=0"], "--pod-store-max-stale"),  # no value turns the check off
    (["--pod-store-max-stale=500ms"], "--pod-store-max-stale"),
    (["--pod-store-max-stale=25h"], "--pod-store-max-stale"),
    (["--base-role-arn=arn:aws:iam::123:role/", "--auto-discover-base-arn"], "--auto-discover-base-arn"),
    (["--default-role=x", "--auto-discover-default-role"], "--auto-discover-default-role"),
    (["--app-port"], "--app-port"),
    (["--node="], "--node"),
])
def test_bad_flags_exit_2_with_one_line_naming_the_flag(args, flag):
    r = run(args)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert flag in lines[0], lines[0]


@pytest.mark.parametrize("args,warning", [
    (["--debug", "true"], 'ignoring argument "true"'),
    (["--namespace-restriction-format=regex"], "glob patterns are used"),
    (["--host-ip=fd00::1"], "used as --host-ipv6"),
    (["--iam-role-key="], "every pod gets the default role"),
    (["--log-format=xml"], "text lines are written"),
    (["--node=$(NODE_NAME)"], "Kubernetes expansion"),
    (["--host-ip=$(HOST_IP)"], "Kubernetes expansion"),
])
def test_values_kube2iam_accepted_give_one_warning_line_and_no_exit(args, warning):
    r = run(args + ["--version"])
    assert r.returncode == 0, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and warning in lines[0], r.stderr


def test_help_says_log_format_has_no_effect_under_the_journal():
    r = run(["--help"])
    line = next(l for l in r.stdout.splitlines() if "--log-format" in l)
    assert "journal" in line and "no effect" in line


def test_empty_node_is_refused_with_the_reason():
    r = run(["--node="])
    assert r.returncode == 2
    assert "every pod of the cluster" in r.stderr and "own node's pods" in r.stderr


def test_api_token_is_never_echoed():
    r = run(["--api-token=", "--app-port=0"])
    assert r.returncode == 2
    r = run(["--api-token=s3cr3t-token-value", "--app-port=0"])
    assert r.returncode == 2
    assert "s3cr3t" not in r.stderr + r.stdout


def test_flags_come_from_kube2iam_args_and_the_command_line_wins():
    # from the environment file's variable alone: a bad value there is reported
    r = run([], env={"KUBE2IAM_ARGS": "--app-port=notaport"})
    assert r.returncode == 2 and "--app-port" in r.stderr
    # the command line wins over the environment
    r = run(["--version"], env={"KUBE2IAM_ARGS": "--log-level=debug --iam-role-session-ttl=1h"})
    assert r.returncode == 0
    r = run(["--app-port=notaport"], env={"KUBE2IAM_ARGS": "--app-port=8181"})
    assert r.returncode == 2
    r = run(["--iam-role-session-ttl=1h", "--version"], env={"KUBE2IAM_ARGS": "--iam-role-session-ttl=1s"})
    assert r.returncode == 2  # the env value is still parsed and still bad
    r = run([], env={"KUBE2IAM_ARGS": "--node 'unterminated"})
    assert r.returncode == 2 and "KUBE2IAM_ARGS" in r.stderr


def test_go_boolean_spellings_are_accepted():
    for v in ("true", "false", "1", "0", "t", "F", "TRUE", "False"):
        r = run([f"--debug={v}", "--version"])
        assert r.returncode == 0, v


def test_helper_takes_the_same_flags():
    r = subprocess.run([binary("kube2iam-nft"), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    assert "install" in r.stdout and "--host-interface" in r.stdout
    r = subprocess.run([binary("kube2iam-nft"), "--app-port=0", "install"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and "--app-port" in r.stderr

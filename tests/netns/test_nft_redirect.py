# SPDX-License-Identifier: BSD-3-Clause
"""kube2iam-nft against the real kernel, each test in namespaces of its own: what install writes
(read back with nft), that it replaces rather than adds, that check notices edits, that remove
touches nothing else, the exit statuses of bad input and missing privileges, and the redirect
itself with a pod namespace on a veth pair."""

import json
import random
import subprocess

import pytest

IMDS = "169.254.169.254"


def expected_ruleset(family, daddr, target, port, interfaces):
    proto = "ip6" if family == "ip6" else "ip"
    rules = []
    for iface in interfaces:
        rules.append({"rule": {"family": family, "table": "kube2iam", "chain": "prerouting", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": iface}},
            {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "daddr"}}, "right": daddr}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
            {"dnat": {"addr": target, "port": port}},
        ]}})
    return [
        {"table": {"family": family, "name": "kube2iam"}},
        {"chain": {"family": family, "table": "kube2iam", "name": "prerouting", "type": "nat",
                   "hook": "prerouting", "prio": -110, "policy": "accept"}},
        *rules,
    ]


BASE = ["--host-ip", "10.0.0.1", "--host-interface", "cali+,docker0"]


def assert_ok(res):
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr}"


def assert_one_line_exit(res, code):
    assert res.returncode == code, f"exit {res.returncode}, wanted {code}: {res.stderr}"
    lines = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines


def test_install_writes_exactly_the_expected_table(node):
    assert_ok(node.helper(*BASE, "install"))
    assert node.ruleset() == expected_ruleset("ip", IMDS, "10.0.0.1", 8181, ["cali*", "docker0"])
    text = node.nft("list", "table", "ip", "kube2iam").stdout
    assert "type nat hook prerouting priority dstnat - 10; policy accept;" in text
    assert 'iifname "cali*" ip daddr 169.254.169.254 tcp dport 80 dnat to 10.0.0.1:8181' in text
    # no owner flag: the table outlived the helper that wrote it
    assert "owner" not in node.nft("list", "ruleset").stdout


def test_install_twice_leaves_one_copy(node):
    assert_ok(node.helper(*BASE, "install"))
    assert_ok(node.helper(*BASE, "install"))
    assert node.ruleset() == expected_ruleset("ip", IMDS, "10.0.0.1", 8181, ["cali*", "docker0"])


def test_install_replaces_a_changed_configuration(node):
    assert_ok(node.helper(*BASE, "install"))
    assert_ok(node.helper("--host-ip", "10.0.0.2", "--host-interface", "eni+", "--app-port", "9000", "install"))
    assert node.ruleset() == expected_ruleset("ip", IMDS, "10.0.0.2", 9000, ["eni*"])


def test_check_passes_only_when_installed_as_configured(node):
    assert node.helper(*BASE, "check").returncode == 1  # nothing installed yet
    assert_ok(node.helper(*BASE, "install"))
    assert_ok(node.helper(*BASE, "check"))
    # a different configuration is a mismatch too
    assert node.helper("--host-ip", "10.0.0.1", "--host-interface", "cali+", "check").returncode == 1
    assert node.helper(*BASE, "--app-port", "8182", "check").returncode == 1


def test_check_fails_after_someone_replaces_the_rule(node):
    assert_ok(node.helper(*BASE, "install"))
    handle = node.handles("ip", "kube2iam", "prerouting")[0]
    node.nft("replace", "rule", "ip", "kube2iam", "prerouting", "handle", str(handle),
             "iifname", "cali*", "ip", "daddr", IMDS, "tcp", "dport", "80", "dnat", "to", "10.0.0.1:9999")
    res = node.helper(*BASE, "check")
    assert res.returncode == 1, res.stderr
    assert "differs" in res.stderr
    # install repairs it
    assert_ok(node.helper(*BASE, "install"))
    assert_ok(node.helper(*BASE, "check"))


def test_check_fails_after_someone_deletes_the_rule(node):
    assert_ok(node.helper(*BASE, "install"))
    handle = node.handles("ip", "kube2iam", "prerouting")[1]
    node.nft("delete", "rule", "ip", "kube2iam", "prerouting", "handle", str(handle))
    assert node.helper(*BASE, "check").returncode == 1


def test_check_fails_when_someone_adds_to_our_table(node):
    assert_ok(node.helper(*BASE, "install"))
    node.nft("add", "rule", "ip", "kube2iam", "prerouting", "counter")
    assert node.helper(*BASE, "check").returncode == 1
    assert_ok(node.helper(*BASE, "install"))
    node.nft("add", "chain", "ip", "kube2iam", "extra")
    assert node.helper(*BASE, "check").returncode == 1
    assert_ok(node.helper(*BASE, "install"))
    node.nft("add", "set", "ip", "kube2iam", "s", "{ type ipv4_addr; }")
    assert node.helper(*BASE, "check").returncode == 1


def test_remove_leaves_other_tables_alone(node):
    node.nft("add", "table", "ip", "filter")
    node.nft("add", "chain", "ip", "filter", "input", "{ type filter hook input priority 0; }")
    node.nft("add", "rule", "ip", "filter", "input", "tcp", "dport", "22", "accept")
    node.nft("add", "table", "inet", "kube2iam")  # same name, another family: not ours
    node.nft("add", "table", "ip", "nat")
    node.nft("add", "chain", "ip", "nat", "prerouting", "{ type nat hook prerouting priority dstnat; }")
    before = node.ruleset()
    assert_ok(node.helper(*BASE, "--ipv6", "--host-ipv6", "fd00::1", "install"))
    assert node.ruleset() != before
    assert_ok(node.helper("remove"))
    assert node.ruleset() == before


def test_remove_succeeds_when_absent(node):
    assert_ok(node.helper("remove"))
    assert_ok(node.helper("remove"))
    assert node.ruleset() == []


def test_ipv6_rules_when_asked(node):
    assert_ok(node.helper(*BASE, "--ipv6", "--host-ipv6", "fd00::1", "install"))
    assert node.ruleset() == (expected_ruleset("ip", IMDS, "10.0.0.1", 8181, ["cali*", "docker0"]) +
                              expected_ruleset("ip6", "fd00:ec2::254", "fd00::1", 8181, ["cali*", "docker0"]))
    assert_ok(node.helper(*BASE, "--ipv6", "--host-ipv6", "fd00::1", "check"))
    # without --ipv6 the ip6 table is not what install writes, and install takes it away
    assert node.helper(*BASE, "check").returncode == 1
    assert_ok(node.helper(*BASE, "install"))
    assert node.ruleset() == expected_ruleset("ip", IMDS, "10.0.0.1", 8181, ["cali*", "docker0"])


def test_ipv6_host_ip_is_taken_as_host_ipv6_as_kube2iam_accepted_it(node):
    # kube2iam took any address for --host-ip: an IPv6 one is the target of the IPv6 redirect
    r = node.helper(*BASE, "--ipv6", "--host-ip", "fd00::1", "install")
    assert_ok(r)
    assert "used as --host-ipv6" in r.stderr
    assert node.ruleset() == (expected_ruleset("ip", IMDS, "10.0.0.1", 8181, ["cali*", "docker0"]) +
                              expected_ruleset("ip6", "fd00:ec2::254", "fd00::1", 8181, ["cali*", "docker0"]))


@pytest.mark.parametrize("args", [
    ["--host-interface", "eth/0"],
    ["--host-interface", "a*b"],
    ["--host-interface", "abcdefghijklmnop"],
    ["--host-interface", ","],
    ["--host-ip", "300.1.1.1"],
    ["--host-ipv6", "10.0.0.1", "--ipv6"],
    ["--app-port", "0"],
    ["--app-port", "65536"],
    ["--app-port", "http"],
    ["--metadata-addr", "metadata.internal"],
    ["--no-such-flag"],
], ids=lambda a: " ".join(a))
def test_bad_input_exits_2_with_one_line(node, args):
    full = ["--host-ip", "10.0.0.1", *args] if "--host-ip" not in args else list(args)
    res = node.helper(*full, "install")
    assert_one_line_exit(res, 2)
    assert node.ruleset() == []


def test_unknown_command_exits_2(node):
    assert_one_line_exit(node.helper(*BASE, "reinstall"), 2)


@pytest.mark.parametrize("command", ["install", "check", "remove"])
def test_without_cap_net_admin_exits_3_with_one_line(node, command):
    res = node.helper(*BASE, command, drop_net_admin=True)
    assert_one_line_exit(res, 3)
    assert "CAP_NET_ADMIN" in res.stderr
    assert node.ruleset() == []


def test_interfaces_need_not_exist(node):
    # kube2iam #41: the CNI's interfaces come up after the node boots
    assert_ok(node.helper("--host-ip", "10.0.0.1", "--host-interface", "cali+,eni+,cni0,nosuchif9", "install"))
    assert node.ruleset() == expected_ruleset("ip", IMDS, "10.0.0.1", 8181, ["cali*", "eni*", "cni0", "nosuchif9"])


def test_kernel_error_is_reported_against_the_message(node):
    # a table of the same name owned by another process: the kernel refuses our "add table"
    holder = node.popen("nft", "-i", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True)
    try:
        holder.stdin.write("add table ip kube2iam { flags owner; }\nlist tables\n")
        holder.stdin.flush()
        for _ in range(50):
            if "kube2iam" in holder.stdout.readline():
                break
        res = node.helper(*BASE, "install")
        assert_one_line_exit(res, 5)
        assert "rejected" in res.stderr and "add table ip kube2iam" in res.stderr
        assert node.helper(*BASE, "check").returncode == 1
    finally:
        holder.kill()
        holder.wait()


def test_no_host_address_exits_6_with_one_line(node):
    # no --host-ip, no metadata service, no default route
    res = node.helper("--host-interface", "cali+", "install")
    assert_one_line_exit(res, 6)
    assert "--host-ip" in res.stderr


def test_host_address_from_the_default_route(node, make_pod):
    pod = make_pod("k2ivethA", "10.201.0")
    node.exec("ip", "route", "add", "default", "via", pod.ip, check=True)
    # nothing answers at 169.254.169.254 here: the helper falls back to the route's interface
    assert_ok(node.helper("--host-interface", "cali+", "--metadata-addr", "10.201.0.3", "install"))
    rules = [e for e in node.ruleset() if "rule" in e]
    assert rules[0]["rule"]["expr"][-1] == {"dnat": {"addr": pod.node_ip, "port": 8181}}


def test_host_address_from_the_metadata_service(node, serve):
    port = random.randint(20000, 60000)
    serve(node, "imds", "127.0.0.1", port, "10.9.8.7", "2600:1f18::7")
    args = ["--host-interface", "cali+", "--metadata-addr", f"127.0.0.1:{port}", "--ipv6"]
    assert_ok(node.helper(*args, "install"))
    assert node.ruleset() == (expected_ruleset("ip", "127.0.0.1", "10.9.8.7", 8181, ["cali*"]) +
                              expected_ruleset("ip6", "fd00:ec2::254", "2600:1f18::7", 8181, ["cali*"]))
    assert_ok(node.helper(*args, "check"))


def curl(ns, url, max_time=3):
    return ns.exec("curl", "-sS", "-m", str(max_time), url, timeout=max_time + 30)


def test_pod_request_reaches_the_node_server_with_its_own_address(node, make_pod, serve):
    pod = make_pod("k2icali1", "10.200.0")
    stranger = make_pod("k2iother1", "10.202.0")  # matches no pattern
    port = random.randint(20000, 60000)
    serve(node, "echo", pod.node_ip, port)

    # before the redirect: nothing answers (no RST, a timeout)
    assert curl(pod.ns, f"http://{IMDS}/latest/meta-data/", 2).returncode == 28

    assert_ok(node.helper("--host-ip", pod.node_ip, "--host-interface", "k2icali+,eni+",
                          "--app-port", str(port), "install"))
    res = curl(pod.ns, f"http://{IMDS}/latest/meta-data/")
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout)
    assert seen == {"client": pod.ip, "path": "/latest/meta-data/", "host": IMDS}

    # a pod on an interface that matches no pattern is not redirected
    assert curl(stranger.ns, f"http://{IMDS}/latest/meta-data/").returncode == 28

    # remove takes the redirect away again
    assert_ok(node.helper("remove"))
    assert curl(pod.ns, f"http://{IMDS}/latest/meta-data/", 2).returncode == 28


def test_ipv6_pod_request_reaches_the_node_server(node, make_pod, serve):
    pod = make_pod("k2icali6", "10.203.0")
    pod.add_ipv6("fd00:203")
    port = random.randint(20000, 60000)
    serve(node, "echo", pod.node_ip6, port)
    assert_ok(node.helper("--host-ip", pod.node_ip, "--host-interface", "k2icali+", "--app-port", str(port),
                          "--ipv6", "--host-ipv6", pod.node_ip6, "install"))
    res = curl(pod.ns, "http://[fd00:ec2::254]/latest/meta-data/")
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout)
    assert seen["client"] == pod.ip6
    assert seen["host"] == "[fd00:ec2::254]"

"""kube2iam under a real systemd (issue 7): a node's first boot with the package baked into the image,
then the package's removal. One container per module; the tests run in file order.

What the daemon and the helper cannot do yet is marked xfail with the missing piece named; those
tests assert the real behaviour and start passing (XPASS) when the piece lands.
"""
import json
import re

import pytest

from nspawn_helpers import APP_PORT

READY_WAIT = 20     # seconds: the daemon sends READY=1 at once without a kubeconfig (DESIGN.md)

MISSING_READY = ("kube2iam does not send READY=1 yet: src/main.c only parses flags (the lead's "
                 "event loop with sd_notify READY=1/STATUS= is not merged)")
MISSING_NFT = ("kube2iam-nft install does not write the table yet: src/nft/nft-main.c only parses "
               "flags (the nft helper is not merged)")
MISSING_LOGS = "the daemon logs nothing yet: src/main.c only parses flags"


@pytest.fixture(scope="module")
def ready(node):
    """Waits (bounded) for kube2iam.service to become active; returns its properties either way."""
    node.wait_for(lambda: node.show("kube2iam.service", "ActiveState") == "active", READY_WAIT,
                  "kube2iam.service active")
    return node.show("kube2iam.service", "ActiveState", "SubState", "StatusText",
                     "ActiveEnterTimestampMonotonic", "ExecMainStatus", "ExecMainCode", "MainPID",
                     "NRestarts", "Result")


def test_socket_listens_on_8181_at_boot_and_accepts_pod_connections(node):
    assert node.show("kube2iam.socket", "ActiveState") == "active"
    listen = node.show("kube2iam.socket", "Listen")
    assert listen.startswith(f"[::]:{APP_PORT}") or listen.startswith(f"0.0.0.0:{APP_PORT}"), listen
    # Accepted into the kernel's backlog whether or not the daemon is up (DESIGN.md invariant 2).
    assert node.pod_connect()


def test_daemon_starts_inside_its_sandbox(node, ready):
    # 226/NAMESPACE, 218/CAPABILITIES or a seccomp kill would mean the unit's sandbox cannot be
    # set up (or is too tight for the binary's start-up): the daemon either runs or exited by itself.
    state = {}

    def main_ran():
        state.update(node.show("kube2iam.service", "MainPID", "ExecMainCode", "ExecMainStatus",
                               "ExecMainStartTimestampMonotonic"))
        return state["MainPID"] != "0" or state["ExecMainCode"] != "0"

    # A restart cycle passes through states with neither (ExecStartPre= running): sample again.
    assert node.wait_for(main_ran, READY_WAIT, "kube2iam's main process"), state
    assert state["ExecMainStartTimestampMonotonic"] not in ("", "0"), "ExecStart= never ran"
    if state["MainPID"] == "0":
        assert state["ExecMainCode"] == "1" and state["ExecMainStatus"] == "0", state
    log = node.sh("journalctl -b --no-pager -o cat -u kube2iam.service").stdout
    assert not re.search(r"status=(2[0-4]\d)/|code=(killed|dumped)", log), log


@pytest.mark.xfail(reason=MISSING_READY, strict=False, raises=AssertionError)
def test_service_becomes_active_once_daemon_sends_ready(node, ready):
    assert ready["ActiveState"] == "active" and ready["SubState"] == "running", ready
    assert ready["StatusText"], "no STATUS= line"
    ready_usec = int(ready["ActiveEnterTimestampMonotonic"])
    print(f"boot to READY: {(ready_usec - node.boot_usec) / 1e6:.3f} s")


def test_kubelet_dropin_requires_and_orders_kubelet_after_kube2iam(node):
    props = node.show("kubelet.service", "After", "Requires", "DropInPaths")
    assert "kube2iam.service" in props["After"].split()
    assert "kube2iam.service" in props["Requires"].split()
    # /lib or /usr/lib, depending on whether the rootfs is merged-/usr.
    assert any(p.endswith("/lib/systemd/system/kubelet.service.d/10-kube2iam.conf")
               for p in props["DropInPaths"].split()), props["DropInPaths"]
    # And kube2iam is ordered before kubelet from its side as well.
    assert "kubelet.service" in node.show("kube2iam.service", "Before").split()


def test_kubelet_never_started_without_the_redirect(node, ready):
    starts = node.sh("cat /var/log/fake-kubelet/starts 2>/dev/null || true").stdout.split("\n")
    starts = [l for l in starts if l.strip()]
    if starts:
        assert all(l.split()[1] == "present" for l in starts), starts
    else:
        # systemd held kubelet back because kube2iam.service never became ready.
        log = node.sh("journalctl -b --no-pager -o cat -u kubelet.service").stdout
        assert re.search(r"^Dependency failed for (kubelet\.service - )?stand-in kubelet", log, re.M), log


@pytest.mark.xfail(reason=f"{MISSING_READY}; {MISSING_NFT}", strict=False, raises=AssertionError)
def test_kubelet_starts_after_the_redirect_exists(node, ready):
    assert node.wait_for(lambda: node.show("kubelet.service", "ActiveState") == "active",
                         READY_WAIT, "kubelet active")
    starts = node.sh("cat /var/log/fake-kubelet/starts").stdout.split()
    assert starts[1::2] and set(starts[1::2]) == {"present"}, starts
    kubelet_start = int(node.show("kubelet.service", "ExecMainStartTimestampMonotonic"))
    assert kubelet_start >= int(ready["ActiveEnterTimestampMonotonic"])


@pytest.mark.xfail(reason=MISSING_NFT, strict=False, raises=AssertionError)
def test_redirect_installed_at_boot(node, ready):
    assert node.rule_present()


def test_journal_has_the_units_lines(node, ready):
    log = node.sh("journalctl -b --no-pager -o cat -u kube2iam.service").stdout
    assert "kube2iam IAM roles for pods over the EC2 metadata API" in log, log


@pytest.mark.xfail(reason=MISSING_LOGS, strict=False, raises=AssertionError)
def test_journal_has_the_daemons_own_lines(node, ready):
    out = node.sh("journalctl -b --no-pager -o json -u kube2iam.service _COMM=kube2iam").stdout
    entries = [json.loads(l) for l in out.splitlines() if l.strip()]
    assert entries, "no journal entry written by the kube2iam process"


# What the sandboxed daemon may and may not touch, proven by running a probe under the installed
# unit's own [Service] sandbox settings (a copy of kube2iam.service with only the ExecStart= and the
# service-type lines replaced). The files stand in for a node's kubelet state.
NOT_SANDBOX = ("Type=", "NotifyAccess=", "ExecStartPre=", "ExecStart=", "Restart", "WatchdogSec=",
               "TimeoutStopSec=")
PROBE = r"""
ok() { if "$@" >/dev/null 2>&1; then echo "yes $*"; else echo "no $*"; fi; }
ok cat /var/lib/kubelet/kubeconfig
ok cat /var/lib/kubelet/pki/kubelet-client-current.pem
ok cat /etc/kubernetes/pki/ca.crt
ok cat /var/lib/kubelet/pods/uid-1/volumes/secret/token
ok ls /var/lib/dpkg
ok test -e /run/dbus/system_bus_socket
ok systemctl --no-pager show -p Version
ok busctl --system --no-pager list
ok test -e /run/containerd/containerd.sock
ok touch /etc/kube2iam-probe
ok touch /var/lib/kubelet/kube2iam-probe
ok touch /tmp/kube2iam-probe
ok ls /root
"""


@pytest.fixture(scope="module")
def sandbox_probe(node):
    node.sh("mkdir -p /var/lib/kubelet/pki /var/lib/kubelet/pods/uid-1/volumes/secret "
            "/etc/kubernetes/pki /run/containerd /root && "
            "echo kubeconfig >/var/lib/kubelet/kubeconfig && "
            "echo key >/var/lib/kubelet/pki/kubelet-client-current.pem && "
            "chmod 0600 /var/lib/kubelet/pki/kubelet-client-current.pem && "
            "echo ca >/etc/kubernetes/pki/ca.crt && "
            "echo secret >/var/lib/kubelet/pods/uid-1/volumes/secret/token && "
            "touch /run/containerd/containerd.sock")
    unit = node.sh("systemctl cat kube2iam.service").stdout
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
    keep = [l for l in service.splitlines()
            if l.strip() and not l.startswith("#") and not l.startswith(NOT_SANDBOX)]
    probe_unit = ("[Service]\nType=oneshot\nStandardOutput=file:/run/kube2iam-probe.out\n"
                  + "\n".join(keep) + "\nExecStart=/bin/sh /usr/local/sbin/kube2iam-probe\n")
    node.sh(f"cat >/usr/local/sbin/kube2iam-probe <<'EOF'\n{PROBE}\nEOF\n"
            f"cat >/run/systemd/system/kube2iam-probe.service <<'EOF'\n{probe_unit}EOF\n"
            "systemctl daemon-reload && systemctl start kube2iam-probe.service")
    out = node.sh("cat /run/kube2iam-probe.out").stdout
    return {l.split(" ", 1)[1]: l.startswith("yes") for l in out.splitlines() if " " in l}


def test_sandbox_reads_kubeconfig_and_kubelet_pki_as_root_without_capabilities(sandbox_probe):
    assert sandbox_probe["cat /var/lib/kubelet/kubeconfig"], sandbox_probe
    assert sandbox_probe["cat /var/lib/kubelet/pki/kubelet-client-current.pem"], sandbox_probe
    assert sandbox_probe["cat /etc/kubernetes/pki/ca.crt"], sandbox_probe


def test_sandbox_hides_pod_secrets_other_state_and_control_sockets(sandbox_probe):
    for hidden in ("cat /var/lib/kubelet/pods/uid-1/volumes/secret/token", "ls /var/lib/dpkg",
                   "test -e /run/dbus/system_bus_socket",
                   # PID 1's private socket stays visible (a mode-0000 inode over it): what matters
                   # is that root without capabilities cannot talk to PID 1 or D-Bus through it.
                   "systemctl --no-pager show -p Version", "busctl --system --no-pager list",
                   "test -e /run/containerd/containerd.sock", "ls /root"):
        assert not sandbox_probe[hidden], (hidden, sandbox_probe)


def test_sandbox_is_read_only_but_for_a_private_tmp(sandbox_probe):
    assert not sandbox_probe["touch /etc/kube2iam-probe"]
    assert not sandbox_probe["touch /var/lib/kubelet/kube2iam-probe"]
    assert sandbox_probe["touch /tmp/kube2iam-probe"]


def listener(node):
    """The listening socket's inode on the app port: a new one means the port was closed."""
    out = node.sh(f"ss -Hltne 'sport = :{APP_PORT}'").stdout
    m = re.search(r"ino:(\d+)", out)
    return m.group(1) if m else None


def test_upgrade_restarts_the_service_but_keeps_the_socket_open(node, ready):
    sock_before = node.show("kube2iam.socket", "ActiveEnterTimestampMonotonic")
    ino_before = listener(node)
    assert ino_before, "nothing listens on the app port"
    # Reinstalling the same version runs the maintainer scripts of an upgrade ("configure <old>").
    node.sh("dpkg -i --force-confold /var/tmp/kube2iam.deb")
    assert node.show("kube2iam.socket", "ActiveState") == "active"
    assert node.show("kube2iam.socket", "ActiveEnterTimestampMonotonic") == sock_before
    assert listener(node) == ino_before
    assert node.pod_connect()


@pytest.fixture(scope="module")
def removal(node, ready):
    """Removes the package (dpkg -r, then -P) on the running node; records before and after."""
    before = {"rule": node.rule_present(),
              "unit": node.sh("test -e /lib/systemd/system/kube2iam.service", check=False).returncode == 0}
    removed = node.sh("dpkg -r kube2iam 2>&1", check=False)
    after = {
        "dpkg_r": removed.returncode, "dpkg_r_out": removed.stdout,
        "rule": node.rule_present(),
        "service": node.show("kube2iam.service", "LoadState"),
        "socket": node.show("kube2iam.socket", "LoadState"),
        "socket_file": node.sh("test -e /lib/systemd/system/kube2iam.socket", check=False).returncode == 0,
        "dropin": node.show("kubelet.service", "DropInPaths"),
        "listening": node.sh(f"ss -Hltn 'sport = :{APP_PORT}'").stdout.strip(),
        "envfile_after_remove": node.sh("test -e /etc/default/kube2iam", check=False).returncode == 0,
    }
    purged = node.sh("dpkg -P kube2iam 2>&1", check=False)
    after["dpkg_p"] = purged.returncode
    after["envfile_after_purge"] = node.sh("test -e /etc/default/kube2iam", check=False).returncode == 0
    return before, after


def test_removal_removes_units_dropin_and_listener(removal):
    before, after = removal
    assert before["unit"]
    assert after["dpkg_r"] == 0, after["dpkg_r_out"]
    assert after["service"] == "not-found" and after["socket"] == "not-found", after
    assert not after["socket_file"]
    assert "10-kube2iam.conf" not in after["dropin"]
    assert after["listening"] == "", after["listening"]


def test_purge_removes_environment_file_kept_by_remove(removal):
    _, after = removal
    assert after["envfile_after_remove"], "dpkg -r must keep the conffile"
    assert after["dpkg_p"] == 0 and not after["envfile_after_purge"]


@pytest.mark.xfail(reason=MISSING_NFT, strict=False, raises=AssertionError)
def test_removal_removes_the_redirect(removal):
    before, after = removal
    assert before["rule"], "the redirect was never installed"
    assert not after["rule"]

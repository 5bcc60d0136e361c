"""A Kubernetes node under a real systemd: a Debian bookworm rootfs booted with systemd-nspawn in a
"node" network namespace, with a "pod" namespace beside it (docs/testing.md). The package is installed
into the rootfs before boot, as an image build (Packer) does, so the first boot is a node's boot.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "tests" / "fakes"))
sys.path.insert(0, str(REPO / "tests" / "pylib"))

from netns_util import in_netns  # noqa: E402
from node_env import BASE_ARN, NodeEnv  # noqa: E402
from apiserver_harness import write_kubeconfig  # noqa: E402

IMDS = "169.254.169.254"
NODE_NAME = "kube2iam-node"
POD_NAME = "app"
POD_ROLE = "app-role"
# Where the kubelet's kubeconfig and PKI live in the container (the unit lets the daemon read
# /var/lib/kubelet and nothing else of /var/lib).
KUBELET_DIR = "/var/lib/kubelet"
CACHE = Path(os.environ.get("KUBE2IAM_TEST_CACHE", "/var/cache/kube2iam-tests"))
NODE_IP = "10.200.0.1"
POD_IP = "10.200.0.2"
APP_PORT = 8181
# The daemon's runtime libraries, so that one cached rootfs serves every build of the package;
# whatever else the .deb's Depends: names is added (and makes a new cached rootfs).
RUNTIME_LIBS = ["libc6", "libcjson1", "libcurl4", "libmicrohttpd12", "libmnl0", "libnftnl11",
                "libssl3", "libsystemd0", "libxml2", "libyaml-0-2"]
BOOT_TIMEOUT = 90      # seconds; a boot takes ~1 s here, the margin is for loaded CI machines
CMD_TIMEOUT = 60

# Files the sandboxed daemon must not read (kubeadm's control-plane layout, pods' logs; /etc/shadow
# comes with the rootfs) and files beside them it must read (the cluster CA).
NODE_SECRETS = {
    "/etc/kubernetes/admin.conf": "apiVersion: v1\nkind: Config\n# cluster-admin credentials\n",
    "/etc/kubernetes/super-admin.conf": "apiVersion: v1\nkind: Config\n",
    "/etc/kubernetes/pki/ca.key": "-----BEGIN PRIVATE KEY-----\ncluster-ca\n",
    "/etc/kubernetes/pki/sa.key": "-----BEGIN PRIVATE KEY-----\nservice-accounts\n",
    "/etc/kubernetes/pki/apiserver.key": "-----BEGIN PRIVATE KEY-----\napiserver\n",
    "/etc/kubernetes/pki/front-proxy-ca.key": "-----BEGIN PRIVATE KEY-----\nfront-proxy\n",
    "/etc/kubernetes/pki/etcd/ca.key": "-----BEGIN PRIVATE KEY-----\netcd\n",
    "/var/log/pods/default_app_uid-1/app/0.log": "a pod's log line\n",
    "/var/lib/kubelet/pki/kubelet.key": "-----BEGIN PRIVATE KEY-----\nkubelet-serving\n",
}
NODE_READABLE = {
    "/etc/kubernetes/pki/ca.crt": "-----BEGIN CERTIFICATE-----\ncluster-ca\n",
}

FAKE_KUBELET = """#!/bin/sh
# Stand-in kubelet: records when it started (seconds since the host booted) and whether
# kube2iam's redirect existed then. The tests order it with systemd's own timestamps.
now=$(cut -d' ' -f1 /proc/uptime)
if nft list table ip kube2iam >/dev/null 2>&1; then rule=present; else rule=absent; fi
mkdir -p /var/log/fake-kubelet
echo "$now $rule" >>/var/log/fake-kubelet/starts
exec sleep infinity
"""

FAKE_KUBELET_UNIT = """[Unit]
Description=stand-in kubelet (records its start and whether the kube2iam redirect existed)

[Service]
ExecStart=/usr/local/sbin/fake-kubelet

[Install]
WantedBy=multi-user.target
"""


class CommandFailed(Exception):
    """A setup or inspection command failed: an error of the harness, not of the behaviour under
    test (those are AssertionErrors)."""


def run(cmd, check=True, timeout=CMD_TIMEOUT, **kw):
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise CommandFailed(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout[-6000:]}")
    return p


def build_deb(workdir):
    """The .deb from a clean clone of HEAD (docs/testing.md, packages), or $KUBE2IAM_DEB when CI built it already."""
    if os.environ.get("KUBE2IAM_DEB"):
        return Path(os.environ["KUBE2IAM_DEB"])
    tree = Path(workdir) / "deb" / "kube2iam"
    tree.parent.mkdir(parents=True)
    run(["git", "clone", "-q", REPO, tree])
    run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, timeout=600)
    debs = sorted(tree.parent.glob("kube2iam_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def deb_depends(deb):
    out = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
    names = []
    for dep in out.split(","):
        first = dep.split("|")[0].strip()
        if first:
            names.append(first.split()[0].split(":")[0])
    return names


def rootfs_tarball(deb):
    pkgs = sorted(set(RUNTIME_LIBS) | set(deb_depends(deb)))
    out = run([HERE / "build-rootfs.sh", CACHE] + pkgs, timeout=900).stdout
    return Path(out.strip().splitlines()[-1])


def monotonic_usec(value):
    return int(value) if value and value != "0" else None


class Node:
    """One booted container. Names are unique per run; close() removes everything."""

    def __init__(self, workdir, tarball, deb):
        self.id = uuid.uuid4().hex[:6]
        self.ns_node = f"k2i-node-{self.id}"
        self.ns_pod = f"k2i-pod-{self.id}"
        self.if_node = f"k2n{self.id}"
        self.if_pod = f"k2p{self.id}"
        self.workdir = Path(workdir)
        self.root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=self.workdir))
        self.deb = Path(deb)
        self.tarball = tarball
        self.nspawn = None
        self.leader = None
        self.boot_usec = None
        self.env = None

    # --- setup -------------------------------------------------------------------------------
    def setup_network(self):
        run(["ip", "netns", "add", self.ns_node])
        run(["ip", "netns", "add", self.ns_pod])
        run(["ip", "link", "add", self.if_node, "netns", self.ns_node, "type", "veth",
             "peer", "name", self.if_pod, "netns", self.ns_pod])
        run(["ip", "-n", self.ns_node, "addr", "add", f"{NODE_IP}/24", "dev", self.if_node])
        run(["ip", "-n", self.ns_pod, "addr", "add", f"{POD_IP}/24", "dev", self.if_pod])
        for ns, dev in ((self.ns_node, self.if_node), (self.ns_pod, self.if_pod)):
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
        run(["ip", "-n", self.ns_pod, "route", "add", "default", "via", NODE_IP])

    def start_fakes(self):
        """The node's outside world, run by the test on the host but inside the node namespace the
        container shares (the rootfs needs no python3): the fake upstream IMDS at
        169.254.169.254:80, where a pod request that escaped the redirect would land, the fake
        STS and API server on the node's loopback. The kubeconfig and the kubelet's PKI are
        written into the rootfs, where the daemon reads them."""
        kubelet = self.root / KUBELET_DIR.lstrip("/")
        kubelet.mkdir(parents=True, exist_ok=True)
        run(["ip", "-n", self.ns_node, "addr", "add", f"{IMDS}/32", "dev", "lo"])
        with in_netns(self.ns_node):
            self.env = NodeEnv(workdir=str(kubelet), node=NODE_NAME, imds_host=IMDS, imds_port=80)
        inside = lambda p: "/" + str(Path(p).relative_to(self.root))  # noqa: E731
        self.kubeconfig = f"{KUBELET_DIR}/kubelet.conf"
        write_kubeconfig(str(self.root / self.kubeconfig.lstrip("/")), self.env.api.url,
                         ca=inside(self.env.pki.ca_cert), cert=inside(self.env.kubelet_pem),
                         key=inside(self.env.kubelet_pem))
        self.env.add_pod(POD_NAME, POD_IP, role=POD_ROLE)

    def daemon_args(self):
        return (f"--host-ip={NODE_IP} --host-interface={self.if_node} --node={NODE_NAME} "
                f"--kubeconfig={self.kubeconfig} --metadata-addr={IMDS}:80 "
                f"--sts-endpoint=http://127.0.0.1:{self.env.sts.port} --base-role-arn={BASE_ARN}")

    def plant_node_secrets(self):
        """What a control-plane node keeps beside the kubelet's files, and pods' logs: in place before
        the daemon first starts, as on a real node. The daemon must not read any of it."""
        for rel, text in NODE_SECRETS.items():
            path = self.root / rel.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o600)
        for rel, text in NODE_READABLE.items():
            path = self.root / rel.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def prepare_rootfs(self):
        run(["tar", "-C", self.root, "-xf", self.tarball], timeout=300)
        self.start_fakes()
        self.plant_node_secrets()
        sbin = self.root / "usr/local/sbin"
        sbin.mkdir(parents=True, exist_ok=True)
        (sbin / "fake-kubelet").write_text(FAKE_KUBELET)
        (sbin / "fake-kubelet").chmod(0o755)
        unit = self.root / "etc/systemd/system/kubelet.service"
        unit.write_text(FAKE_KUBELET_UNIT)
        wants = self.root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / "kubelet.service").symlink_to("/etc/systemd/system/kubelet.service")
        # The node's settings, in place before the package (dpkg keeps them: --force-confold).
        (self.root / "etc/default").mkdir(parents=True, exist_ok=True)
        (self.root / "etc/default/kube2iam").write_text(
            f'KUBE2IAM_ARGS="{self.daemon_args()}"\n')
        # Installed as an image build would: no systemd running, so the units are only enabled.
        # (Not in /tmp: nspawn mounts a fresh tmpfs there.)
        shutil.copy(self.deb, self.root / "var/tmp/kube2iam.deb")
        run(["systemd-nspawn", "-q", "-D", self.root, "--register=no", "--keep-unit",
             "--private-network", "dpkg", "-i", "--force-confold", "/var/tmp/kube2iam.deb"],
            timeout=120)

    def boot(self):
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-q", "-D", str(self.root), "--register=no", "--keep-unit",
             "--console=passive", "-b", f"--network-namespace-path=/run/netns/{self.ns_node}",
             "--capability=CAP_NET_ADMIN", f"--machine=k2i-{self.id}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while self.leader is None:
            assert self.nspawn.poll() is None, f"systemd-nspawn exited {self.nspawn.returncode}"
            assert time.monotonic() < deadline, "the container's PID 1 never appeared"
            try:
                kids = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children").read_text()
                if kids.split():
                    self.leader = int(kids.split()[0])
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        state = ""
        while state not in ("running", "degraded"):
            assert time.monotonic() < deadline, f"the container did not finish booting: {state}"
            state = self.sh("systemctl is-system-running", check=False).stdout.strip()
            time.sleep(0.2)
        self.boot_usec = monotonic_usec(self.manager_prop("UserspaceTimestampMonotonic"))

    # --- access ------------------------------------------------------------------------------
    def sh(self, script, check=True, timeout=CMD_TIMEOUT):
        """Runs a shell script inside the container (all its namespaces)."""
        return run(["nsenter", "-t", self.leader, "-a", "sh", "-c", script], check=check,
                   timeout=timeout)

    def show(self, unit, *props):
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        vals = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
        return vals[props[0]] if len(props) == 1 else vals

    def manager_prop(self, prop):
        return self.sh(f"systemctl show -p {prop} --value").stdout.strip()

    def rule_present(self):
        """The redirect as the kernel has it, read from the host in the node namespace."""
        return run(["ip", "netns", "exec", self.ns_node, "nft", "list", "table", "ip", "kube2iam"],
                   check=False).returncode == 0

    def pod_connect(self, port=APP_PORT, timeout=3):
        """True when a TCP connection from the pod namespace to the node's port is accepted."""
        code = ("import socket,sys\n"
                f"s=socket.create_connection(('{NODE_IP}',{port}),timeout={timeout})\n"
                "s.close()\n")
        return run(["ip", "netns", "exec", self.ns_pod, "/usr/bin/python3", "-c", code],
                   check=False).returncode == 0

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    # --- teardown ----------------------------------------------------------------------------
    def close(self):
        if self.nspawn and self.nspawn.poll() is None:
            if self.leader:
                run(["nsenter", "-t", self.leader, "-a", "systemctl", "poweroff"], check=False)
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, 9)
                self.nspawn.wait(timeout=10)
        if self.env:
            self.env.stop()
        for ns in (self.ns_pod, self.ns_node):
            run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(self.root, ignore_errors=True)

# SPDX-License-Identifier: BSD-3-Clause
"""A node's outside world on loopback, for tests, the demo and the benchmarks: a fake upstream
IMDS holding the node's instance-profile credentials, a fake STS that accepts only requests
signed with exactly those credentials, and a fake Kubernetes API server (TLS, kubelet client
certificate) with a kubeconfig written as kubeadm writes it. kube2iam is then started with
NodeEnv.daemon_args() and sees a complete node."""

import os
import secrets
import shutil
import tempfile

from apiserver_harness import write_kubeconfig
from apiserver_pki import Pki
from fake_apiserver import FakeApiServer
from fake_imds import FakeImds
from fake_sts import FakeSts

ACCOUNT = "123456789012"
BASE_ARN = f"arn:aws:iam::{ACCOUNT}:role/"
NODE = "node-1"


class NodeEnv:
    def __init__(self, workdir=None, node=NODE, region="us-east-1", kubeconfig=True, namespaces=("default",),
                 imds_host="127.0.0.1", imds_port=0):
        # imds_host/imds_port: a node namespace may put the fake at 169.254.169.254:80 itself, so a
        # pod request that escapes the redirect would really reach it
        self.owns_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="k2i-node-")
        self.node = node
        self.imds = FakeImds(host=imds_host, port=imds_port, region=region, access_key="ASIANODE" + secrets.token_hex(6).upper()).start()
        self.sts = FakeSts(self.imds.access_key, self.imds.secret_key, self.imds.session_token,
                           region=region).start()
        self.pki = Pki(os.path.join(self.dir, "pki"))
        cert, key, combined, serial = self.pki.issue_kubelet("kubelet-client", node=node)
        self.kubelet_pem = combined
        self.api = FakeApiServer(self.pki, node_cert_serials={serial}).start()
        self.kubeconfig = os.path.join(self.dir, "kubelet.conf")
        if kubeconfig:
            self.write_kubeconfig()
        for ns in namespaces:
            self.api.add_namespace(ns)

    def write_kubeconfig(self):
        # kubeadm's kubelet.conf: client-certificate and client-key both point at the combined pem
        write_kubeconfig(self.kubeconfig, self.api.url, ca=self.pki.ca_cert, cert=self.kubelet_pem,
                         key=self.kubelet_pem)

    def daemon_args(self, *extra):
        return [f"--kubeconfig={self.kubeconfig}", f"--metadata-addr={self.imds.addr}",
                f"--sts-endpoint=http://127.0.0.1:{self.sts.port}", f"--node={self.node}",
                "--host-ip=127.0.0.1", *extra]

    def add_pod(self, name, ip, role=None, namespace="default", **kw):
        return self.api.add_pod(name, namespace=namespace, node=self.node, ip=ip, role=role, **kw)

    def secrets(self):
        """Every secret the fakes issued: none of them may appear in the daemon's output."""
        out = [self.imds.secret_key, self.imds.session_token]
        for c in self.sts.calls():
            out += [c.get("secret_access_key"), c.get("session_token")]
        return [s for s in out if s]

    def stop(self):
        for f in (self.api, self.sts, self.imds):
            try:
                f.stop()
            except Exception:
                pass
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

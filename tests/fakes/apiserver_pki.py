# SPDX-License-Identifier: BSD-3-Clause
"""Test PKI for the fake Kubernetes API server, made with the openssl CLI at test time (no key is
ever committed): a CA, a server certificate for 127.0.0.1/localhost, and client certificates
as kubelet has them (CN=system:node:<node>, O=system:nodes)."""

import os
import subprocess


def _run(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


class Pki:
    def __init__(self, directory):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.ca_cert = os.path.join(self.dir, "ca.crt")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self._serial = 1000
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "2", "-subj", "/CN=fake-kubernetes-ca",
             cwd=self.dir)
        self.server_cert, self.server_key = self.issue(
            "server", "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default")

    def issue(self, name, subject, extension=None):
        """Issues a certificate signed by the CA; returns (cert path, key path)."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".crt")
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", subject, cwd=self.dir)
        self._serial += 1
        args = ["x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                "-set_serial", str(self._serial), "-days", "2", "-out", cert]
        if extension:
            ext = os.path.join(self.dir, name + ".ext")
            with open(ext, "w") as f:
                f.write(extension + "\n")
            args += ["-extfile", ext]
        _run(*args, cwd=self.dir)
        return cert, key

    def issue_kubelet(self, name, node="node-1"):
        """A kubelet client certificate; returns (cert, key, combined pem, serial)."""
        cert, key = self.issue(name, "/O=system:nodes/CN=system:node:" + node)
        combined = os.path.join(self.dir, name + "-combined.pem")
        with open(combined, "w") as out:
            out.write(open(cert).read())
            out.write(open(key).read())
        return cert, key, combined, self._serial

# SPDX-License-Identifier: BSD-3-Clause
"""Helpers for tests that drive tests/tools/kube-watch against fake_apiserver.py: kubeconfig
writing and a wrapper around the kube-watch process that collects its JSON lines."""

import json
import os
import queue
import subprocess
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    return os.environ.get("KUBE2IAM_BUILD_DIR", os.path.join(REPO, "build"))


def kube_watch_binary():
    return os.path.join(build_dir(), "tests", "tools", "kube-watch")


def write_kubeconfig(path, server, ca=None, ca_data=None, cert=None, key=None, token=None, token_file=None,
                     exec_command=None, exec_args=(), exec_env=None,
                     exec_api="client.authentication.k8s.io/v1beta1"):
    """Writes a kubeconfig as kubeadm/EKS do (YAML, block style)."""
    lines = ["apiVersion: v1", "kind: Config", "clusters:", "- cluster:", "    server: %s" % server]
    if ca:
        lines.append("    certificate-authority: %s" % ca)
    if ca_data:
        lines.append("    certificate-authority-data: %s" % ca_data)
    lines += ["  name: kubernetes", "contexts:", "- context:", "    cluster: kubernetes",
              "    user: kubelet", "  name: kubelet@kubernetes", "current-context: kubelet@kubernetes",
              "users:", "- name: kubelet", "  user:"]
    if cert:
        lines.append("    client-certificate: %s" % cert)
    if key:
        lines.append("    client-key: %s" % key)
    if token:
        lines.append("    token: %s" % token)
    if token_file:
        lines.append("    tokenFile: %s" % token_file)
    if exec_command:
        lines += ["    exec:", "      apiVersion: %s" % exec_api, "      command: %s" % exec_command]
        if exec_args:
            lines.append("      args: [%s]" % ", ".join(json.dumps(a) for a in exec_args))
        if exec_env:
            lines.append("      env:")
            for k, v in exec_env.items():
                lines += ["      - name: %s" % k, "        value: %s" % json.dumps(v)]
    if not (cert or key or token or token_file or exec_command):
        lines[-1] = "  user: {}"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(tmp, path)  # kubelet writes atomically too


class KubeWatch:
    """The kube-watch tool as a subprocess; its stdout JSON lines are collected."""

    def __init__(self, args, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([kube_watch_binary(), "--node", "node-1", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, text=True)
        self.lines = []
        self.stderr = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self._err_thread = threading.Thread(target=self._read_err, daemon=True)
        self._err_thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {"unparsed": line}
            with self.cond:
                self.lines.append(obj)
                self.cond.notify_all()

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_for(self, pred, timeout=30, start=0):
        """Returns the first line (from index start) for which pred is true."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for obj in self.lines[start:]:
                    if pred(obj):
                        return obj
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("timed out; output:\n%s\nstderr:\n%s" % (
                        "\n".join(json.dumps(x) for x in self.lines[-30:]), "".join(self.stderr[-30:])))
                self.cond.wait(min(left, 0.2))

    def mark(self):
        with self.cond:
            return len(self.lines)

    def command(self, cmd, key, timeout=30):
        start = self.mark()
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.wait_for(lambda o: key in o, timeout=timeout, start=start)

    def lookup(self, ip):
        start = self.mark()
        self.proc.stdin.write("lookup %s\n" % ip)
        self.proc.stdin.flush()
        return self.wait_for(lambda o: o.get("lookup") == ip, start=start)

    def wait_synced(self, timeout=30):
        return self.wait_for(lambda o: o.get("event") == "status" and o.get("pods_synced"), timeout)

    def stop(self):
        """Stops the tool; returns sanitizer reports found in its stderr (empty when clean)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err_thread.join(10)
        return [line for line in self.stderr if "Sanitizer" in line or "runtime error" in line]

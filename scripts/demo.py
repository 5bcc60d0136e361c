#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The daemon's main job on one machine: a pod gets its IAM role through a real AWS client.

As root, a "node" and a "pod" network namespace joined by a veth pair stand in for a worker node
and one of its pods: in the node namespace run the fake Kubernetes API server, STS and instance
metadata service (tests/fakes), kube2iam-nft installs the redirect of 169.254.169.254, and kube2iam
serves; in the pod namespace /usr/bin/aws asks the metadata address it would ask on EC2, with no
override. Without root, the pod is a loopback address and the client is pointed at the daemon.
Everything is torn down at the end."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KUBE2IAM_BUILD_DIR", os.path.join(ROOT, "build"))
PY = "/usr/bin/python3"
TAG = f"k2idemo{os.getpid() % 100000}"
NODE_NS, POD_NS = f"{TAG}n", f"{TAG}p"
NODE_IF, POD_IF = f"{TAG}a", f"{TAG}b"
NODE_IP, POD_IP = "10.231.7.1", "10.231.7.2"
ROLE = "demo-app-role"


def say(text=""):
    print(text, flush=True)


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def can_use_netns():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        return False
    r = subprocess.run(["ip", "netns", "add", TAG + "t"], capture_output=True)
    subprocess.run(["ip", "netns", "del", TAG + "t"], capture_output=True)
    return r.returncode == 0


def in_ns(ns, cmd):
    return ["ip", "netns", "exec", ns] + cmd if ns else cmd


def wait_http(url_cmd, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(url_cmd, capture_output=True).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def main():
    netns = can_use_netns()
    procs, work = [], tempfile.mkdtemp(prefix="k2i-demo-")
    node_ns = NODE_NS if netns else None
    pod_ip = POD_IP if netns else "127.0.0.1"
    daemon_log = os.path.join(work, "kube2iam.log")
    try:
        if netns:
            say(f"== A node and a pod: network namespaces {NODE_NS} and {POD_NS}, joined by a veth pair")
            for c in (["ip", "netns", "add", NODE_NS], ["ip", "netns", "add", POD_NS],
                      ["ip", "link", "add", NODE_IF, "netns", NODE_NS, "type", "veth", "peer", "name", POD_IF,
                       "netns", POD_NS],
                      ["ip", "-n", NODE_NS, "addr", "add", NODE_IP + "/24", "dev", NODE_IF],
                      ["ip", "-n", POD_NS, "addr", "add", POD_IP + "/24", "dev", POD_IF],
                      ["ip", "-n", NODE_NS, "link", "set", "lo", "up"],
                      ["ip", "-n", NODE_NS, "link", "set", NODE_IF, "up"],
                      ["ip", "-n", POD_NS, "link", "set", "lo", "up"],
                      ["ip", "-n", POD_NS, "link", "set", POD_IF, "up"],
                      ["ip", "-n", POD_NS, "route", "add", "default", "via", NODE_IP]):
                run(c)
        else:
            say("== Not root: the pod is 127.0.0.1 and the client is pointed at the daemon "
                "(run as root for network namespaces and the real redirect)")

        say("== The node's outside world, on loopback: fake Kubernetes API server (TLS, kubelet client "
            "certificate), STS and instance metadata (tests/fakes)")
        fakes = subprocess.Popen(in_ns(node_ns, [PY, os.path.join(ROOT, "tests", "fakes", "run_node_env.py"),
                                                 "--workdir", work, "--pod", f"demo-app={pod_ip}={ROLE}"]),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(fakes)
        info = json.loads(fakes.stdout.readline())
        say(f"   pod demo-app at {pod_ip}, annotated iam.amazonaws.com/role: {ROLE}")

        args = info["daemon_args"] + [f"--base-role-arn={info['base_arn']}", "--verbose"]
        if netns:
            args = [a for a in args if not a.startswith("--host-ip")] + [f"--host-ip={NODE_IP}",
                                                                        f"--host-interface={NODE_IF}"]
            say("== kube2iam-nft install: the redirect, in one atomic nftables batch")
            # the rule matches the address pods ask (169.254.169.254); the daemon's upstream is the fake
            nft_args = [a for a in args if not a.startswith("--metadata-addr")] + ["--metadata-addr=169.254.169.254"]
            r = run(in_ns(node_ns, [os.path.join(BUILD, "kube2iam-nft")] + nft_args + ["install"]), check=False)
            if r.returncode != 0:
                raise SystemExit("kube2iam-nft install failed: " + r.stderr.strip())
            say("".join("   " + x + "\n" for x in run(in_ns(node_ns, ["nft", "list", "table", "ip",
                                                                        "kube2iam"])).stdout.splitlines()))
        else:
            args += ["--listen-address=127.0.0.1", "--app-port=18181"]

        say("== kube2iam starts (it would be kube2iam.service under systemd)")
        log = open(daemon_log, "w")
        daemon = subprocess.Popen(in_ns(node_ns, [os.path.join(BUILD, "kube2iam")] + args),
                                  stdout=log, stderr=subprocess.STDOUT)
        procs.append(daemon)
        health = "http://127.0.0.1:%s/healthz" % ("8181" if netns else "18181")
        if not wait_http(in_ns(node_ns, ["curl", "-sf", health])):
            raise SystemExit("kube2iam did not start:\n" + open(daemon_log).read())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            h = run(in_ns(node_ns, ["curl", "-s", health]), check=False).stdout
            if '"cachesSynced":true' in h:
                break
            time.sleep(0.1)
        say("   /healthz: " + h.strip())

        home = os.path.join(work, "home")
        os.makedirs(home, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"HOME": home, "AWS_CONFIG_FILE": os.path.join(home, "none"),
                    "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "none"), "AWS_DEFAULT_REGION": "us-east-1"})
        if netns:
            say("== In the pod: /usr/bin/aws configure export-credentials (the metadata address, no override)")
        else:
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:18181/"
            say("== The pod: /usr/bin/aws configure export-credentials "
                "(AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:18181/)")
        r = run(in_ns(POD_NS if netns else None, ["/usr/bin/aws", "configure", "export-credentials",
                                                   "--format", "env"]), check=False, env=env, timeout=60)
        if r.returncode != 0:
            raise SystemExit("the AWS client got no credentials: " + r.stderr.strip())
        for line in r.stdout.splitlines():
            k, _, v = line.replace("export ", "").partition("=")
            shown = v if k in ("AWS_ACCESS_KEY_ID", "AWS_CREDENTIAL_EXPIRATION") else v[:6] + "… (%d chars)" % len(v)
            say(f"   {k}={shown}")

        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(15)
        log.close()
        say()
        say("What happened:")
        if netns:
            say(f" - the pod's client asked 169.254.169.254 as on EC2; the nftables rule redirected it to kube2iam")
            say(f"   at {NODE_IP}:8181, which saw the pod's own address {POD_IP}")
        say(" - kube2iam found the pod by its address in the store its Kubernetes watch keeps (TLS, the kubelet's")
        say(f"   client certificate), read the role annotation, and assumed {info['base_arn']}{ROLE} through STS,")
        say("   signing with the node's own credentials from the metadata service (SigV4, checked by the fake STS);")
        say("   the role was prefetched when the pod appeared, so the answer came from memory")
        say(" - the client used IMDSv2: kube2iam minted a session token bound to the pod's address")
        say(" - the credentials have an hour of life; kube2iam refreshes them at half-life")
        say(f" - kube2iam stopped on SIGTERM (exit {rc}); its audit entries (journald fields when under systemd):")
        for line in open(daemon_log):
            if "result=" in line:  # the audit entries (kube2iam-style field names on stderr)
                say("   " + line.rstrip())
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if netns:
            subprocess.run(["ip", "netns", "del", POD_NS], capture_output=True)
            subprocess.run(["ip", "netns", "del", NODE_NS], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

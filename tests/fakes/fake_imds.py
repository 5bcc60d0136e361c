#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""A stand-in for the EC2 instance metadata service (IMDS), for tests and the local demo.

Speaks what kube2iam's upstream sees from real IMDS: IMDSv2 tokens (PUT /latest/api/token with a
TTL header of 1..21600, rejected when the PUT carries X-Forwarded-For; 401 for a bad token when
tokens are required), the metadata paths a node has (instance-id, local-ipv4, placement/region,
iam/info, iam/security-credentials/ and the instance role's credentials, identity-credentials,
user-data) and 404 for the rest. Every request is recorded.

Control interface (same port, paths under /__control/, never proxied by a correct daemon since
the tests talk to the fake directly):
  GET  /__control/requests      the recorded requests as JSON
  POST /__control/reset         forget recorded requests
  POST /__control/config        JSON: {"delay": seconds, "status": code, "hang": bool,
                                 "drop": bool, "require_token": bool, "paths": {path: body}}
  hold=True (FakeImds.configure only): requests are recorded, then wait until hold=False (at most
  30 s), then answered as configured by then: a test knows a request is in flight upstream.
Run standalone: fake_imds.py --port N [--role NAME] [--region R]
"""

import argparse
import datetime
import json
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"


class State:
    def __init__(self, role, region, account, instance_id, local_ipv4, access_key, secret_key, session_token):
        self.lock = threading.Lock()
        self.requests = []
        self.tokens = {}
        self.config = {"delay": 0.0, "status": None, "hang": False, "drop": False, "require_token": False}
        self.released = threading.Event()  # hold: set when requests may be answered
        self.released.set()
        self.role = role
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        exp = now + datetime.timedelta(hours=6)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        self.node_credentials = {
            "Code": "Success",
            "LastUpdated": now.strftime(fmt),
            "Type": "AWS-HMAC",
            "AccessKeyId": access_key,
            "SecretAccessKey": secret_key,
            "Token": session_token,
            "Expiration": exp.strftime(fmt),
        }
        self.paths = {
            "/latest/meta-data/instance-id": instance_id,
            "/latest/meta-data/local-ipv4": local_ipv4,
            "/latest/meta-data/placement/region": region,
            "/latest/meta-data/placement/availability-zone": region + "a",
            "/latest/meta-data/hostname": "ip-10-0-0-1.ec2.internal",
            "/latest/meta-data/iam/info": json.dumps({
                "Code": "Success",
                "LastUpdated": now.strftime(fmt),
                "InstanceProfileArn": f"arn:aws:iam::{account}:instance-profile/{role}",
                "InstanceProfileId": "AIPAFAKEINSTANCEPROFILE",
            }, indent=2),
            "/latest/meta-data/iam/security-credentials/": role,
            f"/latest/meta-data/iam/security-credentials/{role}": json.dumps(self.node_credentials, indent=2),
            # the SDKs' extended API (2025): the real IMDS serves the node's keys here too
            "/latest/meta-data/iam/security-credentials-extended/": role,
            f"/latest/meta-data/iam/security-credentials-extended/{role}":
                json.dumps(dict(self.node_credentials, AccountId=account), indent=2),
            "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance":
                json.dumps(self.node_credentials, indent=2),
            "/latest/meta-data/identity-credentials/ec2/info": json.dumps({"Code": "Success", "AccountId": account}),
            "/latest/user-data": "#!/bin/sh\necho node user data\n",
        }
        self.paths.update(documented_tree(account, instance_id, local_ipv4, region))


MAC = "0e:11:22:33:44:55"


def documented_tree(account, instance_id, local_ipv4, region):
    """The rest of AWS's documented metadata tree, a value per leaf, and the node's listings."""
    md = "/latest/meta-data/"
    leaves = {
        "ami-id": "ami-0123456789abcdef0", "ami-launch-index": "0", "ami-manifest-path": "(unknown)",
        "ancestor-ami-ids": "ami-00000000000000001", "autoscaling/target-lifecycle-state": "InService",
        "block-device-mapping/ami": "/dev/xvda", "block-device-mapping/root": "/dev/xvda",
        "block-device-mapping/ebs1": "sdb", "elastic-gpus/associations/egpu-1": "{}",
        "elastic-inference/associations/eia-1": "{}", "events/maintenance/history": "[]",
        "events/maintenance/scheduled": "[]", "events/recommendations/rebalance": "{}",
        "instance-action": "none", "instance-life-cycle": "on-demand", "instance-type": "m5.large",
        "ipv6": "2001:db8::1", "kernel-id": "aki-1", "local-hostname": "ip-10-0-0-1.ec2.internal",
        "mac": MAC, "metrics/vhostmd": "<?xml version=\"1.0\"?>", "product-codes": "pc-1",
        "public-hostname": "ec2-203-0-113-1.compute-1.amazonaws.com", "public-ipv4": "203.0.113.1",
        "public-keys/": "0=node-key", "public-keys/0/openssh-key": "ssh-ed25519 AAAA node",
        "ramdisk-id": "ari-1", "reservation-id": "r-0123456789abcdef0", "security-groups": "nodes",
        "services/domain": "amazonaws.com", "services/partition": "aws", "spot/instance-action": "{}",
        "spot/termination-time": "2026-01-01T00:00:00Z", "tags/instance/Name": "node-1",
        "tags/instance": "Name", "placement/availability-zone-id": "use1-az1",
        "placement/group-name": "pg", "placement/host-id": "h-1", "placement/partition-number": "1",
        "network/interfaces/macs/": MAC + "/",
        f"network/interfaces/macs/{MAC}/device-number": "0",
        f"network/interfaces/macs/{MAC}/local-ipv4s": local_ipv4,
        f"network/interfaces/macs/{MAC}/vpc-id": "vpc-1",
        f"network/interfaces/macs/{MAC}/subnet-id": "subnet-1",
        f"network/interfaces/macs/{MAC}/security-group-ids": "sg-1",
        f"network/interfaces/macs/{MAC}/public-ipv4s": "203.0.113.1",
        "placement/": "availability-zone\navailability-zone-id\ngroup-name\nhost-id\npartition-number\nregion",
        "network/": "interfaces/", "network/interfaces/": "macs/",
        "iam/": "info\nsecurity-credentials/\nsecurity-credentials-extended/",
    }
    tree = {md + k: v for k, v in leaves.items()}
    tree.update({
        "/": "1.0\n2007-01-19\n2021-03-23\nlatest",
        "/latest/": "dynamic\nmeta-data\nuser-data",
        md: "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nevents/\nhostname\niam/\n"
            "identity-credentials/\ninstance-action\ninstance-id\ninstance-type\nlocal-hostname\n"
            "local-ipv4\nmac\nnetwork/\nplacement/\nprofile\npublic-keys/\nreservation-id\n"
            "security-groups\nservices/",
        "/latest/dynamic/": "fws/\ninstance-identity/",
        "/latest/dynamic/fws/instance-monitoring": "disabled",
        "/latest/dynamic/instance-identity/": "document\npkcs7\nrsa2048\nsignature",
        "/latest/dynamic/instance-identity/document": json.dumps(
            {"accountId": account, "instanceId": instance_id, "region": region, "privateIp": local_ipv4}),
        "/latest/dynamic/instance-identity/pkcs7": "MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0B",
        "/latest/dynamic/instance-identity/signature": "node-signature-base64",
        "/latest/dynamic/instance-identity/rsa2048": "MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBgkqhkiG9w0BAQsFADCABgkqhkiG9w0B",
        # an undocumented category the real IMDS might grow: never forwarded by the daemon
        md + "profile": "default-hvm",
    })
    # listings answer with or without their trailing slash, as IMDS does
    tree.update({k.rstrip("/"): v for k, v in tree.items() if k.endswith("/") and k != "/"})
    return tree


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # answers go out in two writes: without this, Nagle holds the second for ~40 ms
        disable_nagle_algorithm = True
        def version_string(self):
            return "EC2ws"

        def log_message(self, fmt, *args):
            pass

        def _send(self, code, body=b"", ctype="text/plain", extra=None):
            if isinstance(body, str):
                body = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n > 0 else b""

        def _control(self):
            if self.path == "/__control/requests":
                with state.lock:
                    return self._send(200, json.dumps(state.requests), "application/json")
            if self.path == "/__control/reset" and self.command == "POST":
                self._body()
                with state.lock:
                    state.requests.clear()
                return self._send(200, "{}", "application/json")
            if self.path == "/__control/config" and self.command == "POST":
                cfg = json.loads(self._body() or b"{}")
                with state.lock:
                    for k, v in cfg.items():
                        if k == "paths":
                            state.paths.update(v)
                        else:
                            state.config[k] = v
                return self._send(200, "{}", "application/json")
            return self._send(404, "no such control path")

        def _handle(self):
            if self.path.startswith("/__control/"):
                return self._control()
            body = self._body()
            rec = {
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "client": self.client_address[0],
                "client_port": self.client_address[1],
                "body": body.decode("latin-1"),
            }
            with state.lock:
                state.requests.append(rec)
            state.released.wait(30)
            with state.lock:
                cfg = dict(state.config)
            if cfg["drop"]:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if cfg["hang"]:
                time.sleep(3600)
            if cfg["delay"]:
                time.sleep(float(cfg["delay"]))
            if cfg["status"]:
                return self._send(int(cfg["status"]), "forced status\n")

            path = self.path.split("?", 1)[0]
            if path == "/latest/api/token":
                if self.command != "PUT":
                    return self._send(405, "")
                if "X-Forwarded-For" in self.headers:
                    return self._send(403, "Forbidden")
                ttl = self.headers.get(TOKEN_TTL_HEADER, "")
                if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                    return self._send(400, "Missing or Invalid Parameters")
                token = "fake-imds-token-" + secrets.token_hex(16)
                with state.lock:
                    state.tokens[token] = time.time() + int(ttl)
                return self._send(200, token, extra={TOKEN_TTL_HEADER: ttl})
            if path.endswith("/api/token") and self.command == "PUT":
                return self._send(403, "Forbidden")

            token = self.headers.get(TOKEN_HEADER)
            if token is not None or cfg["require_token"]:
                with state.lock:
                    exp = state.tokens.get(token or "")
                if exp is None or exp < time.time():
                    return self._send(401, "Unauthorized")
            if self.command not in ("GET", "HEAD"):
                return self._send(405, "")
            with state.lock:
                value = state.paths.get(path)
            if value is None:
                return self._send(404, "<?xml version=\"1.0\"?><Error>Not Found</Error>", "text/html")
            return self._send(200, value)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _handle

    return Handler



class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connections under the daemon's load
    request_queue_size = 128
    daemon_threads = True

class FakeImds:
    """Runs the fake in a thread of the test process."""

    def __init__(self, host="127.0.0.1", port=0, role="node-role", region="us-east-1", account="123456789012",
                 instance_id="i-0123456789abcdef0", local_ipv4="10.0.0.1",
                 access_key="ASIANODEFAKEKEY00001", secret_key=None, session_token=None):
        self.secret_key = secret_key or "node-secret-" + secrets.token_hex(12)
        self.session_token = session_token or "node-token-" + secrets.token_hex(24)
        self.access_key = access_key
        self.state = State(role, region, account, instance_id, local_ipv4, access_key, self.secret_key,
                           self.session_token)
        self.server = _Server((host, port), make_handler(self.state))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = host
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    def requests(self):
        with self.state.lock:
            return list(self.state.requests)

    def reset(self):
        with self.state.lock:
            self.state.requests.clear()

    def configure(self, **kw):
        if "hold" in kw:
            (self.state.released.clear if kw.pop("hold") else self.state.released.set)()
        with self.state.lock:
            for k, v in kw.items():
                if k == "paths":
                    self.state.paths.update(v)
                else:
                    self.state.config[k] = v

    def secrets(self):
        return [self.secret_key, self.session_token]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--role", default="node-role")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--local-ipv4", default="10.0.0.1")
    args = ap.parse_args()
    f = FakeImds(args.host, args.port, role=args.role, region=args.region, local_ipv4=args.local_ipv4)
    print(f"fake IMDS listening on {f.host}:{f.port}", flush=True)
    try:
        f.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""A stand-in for AWS STS (AssumeRole over the Query API, and GetCallerIdentity for
`kube2iam doctor`), for tests and the local demo.

It answers AssumeRole with AWS's XML only when the request's SigV4 signature verifies: botocore's
SigV4Auth recomputes it from the request with the credentials the node is known to have (access
key, secret key and session token), so a wrong key, token, scope, signed header or body is refused
with SignatureDoesNotMatch / InvalidClientTokenId as AWS does. Every call gets distinct keys. Every
call is recorded, with what was issued (so tests can grep their outputs for leaked secrets).

Control interface (same port):
  GET  /_control/calls     the recorded calls as JSON
  POST /_control/reset     forget recorded calls, back to normal answers
  POST /_control/config    JSON, any of: {"mode": "ok"|"throttle"|"deny"|"error500"|"hang"|"garbage",
                           "deny_tag_session": [role ARN, ...]: roles whose trust policy lacks
                           sts:TagSession (a call with Tags is AccessDenied),
                           "packed_limit": bytes: a call whose tags and policy ARNs, packed, exceed
                           it is PackedPolicyTooLarge (null: no limit),
                           "delay": seconds before answering, "deny_roles": [role ARN, ...],
                           "expires_in": seconds of life of issued credentials (default DurationSeconds),
                           "region": the region the signature's scope must name (null: any),
                           "web_identity_token": the token AssumeRoleWithWebIdentity accepts (unsigned);
                           it answers with the node credentials given at start}
  "hang" holds the connection until the mode changes or the server stops.
  "garbage" answers 200 with a body that is not an AssumeRole reply (truncated XML, another
  document, HTML, nothing), a different one each call.
Every AssumeRole parameter is checked as STS checks it (check_session_params: session name,
external id, tag keys and values, their count, transitive keys, PolicyArns) and recorded on the
call ("tags", "transitive_tag_keys", "policy_arns").
Run standalone: fake_sts.py --port N --access-key AK --secret-key SK [--session-token T] [--region R]
It prints "READY <port>" on stdout once it listens.
"""

import argparse
import datetime
import json
import re
import secrets
import string
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
# AWS refuses requests whose X-Amz-Date is further than this from its clock.
MAX_SKEW = datetime.timedelta(minutes=15)
MAX_BODY = 64 * 1024


_SIGN_LOCK = threading.Lock()

# AssumeRole's limits (the STS API reference; botocore's sts service-2.json).
SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}", re.A)
EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}", re.A)
# Tag keys and values: Unicode letters, digits, spaces and _ . : / = + - @
TAG_CHARS_RE = re.compile(r"[\w .:/=+\-@\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*")
MAX_TAGS = 50
MAX_POLICY_ARNS = 10


def _members(params, prefix):
    """The values of prefix.member.N[suffix] in N order; None when the numbering has a gap."""
    found = {}
    for k, v in params.items():
        m = re.fullmatch(re.escape(prefix) + r"\.member\.([1-9][0-9]*)(\..+)?", k)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2) or ""] = v
    if sorted(found) != list(range(1, len(found) + 1)):
        return None
    return [found[i] for i in range(1, len(found) + 1)]


def check_session_params(params):
    """(tags, transitive, policy_arns, error): error is (status, code, message) or None."""
    tags, transitive, arns = {}, [], []
    if not SESSION_NAME_RE.fullmatch(params.get("RoleSessionName") or ""):
        return tags, transitive, arns, (400, "ValidationError", "RoleSessionName fails [\\w+=,.@-]{2,64}")
    if "ExternalId" in params and not EXTERNAL_ID_RE.fullmatch(params["ExternalId"]):
        return tags, transitive, arns, (400, "ValidationError", "ExternalId fails [\\w+=,.@:/-]{2,1224}")
    members = _members(params, "Tags")
    if members is None:
        return tags, transitive, arns, (400, "ValidationError", "Tags numbering has a gap")
    for m in members:
        key, value = m.get(".Key"), m.get(".Value")
        if key is None or value is None or set(m) - {".Key", ".Value"}:
            return tags, transitive, arns, (400, "ValidationError", "a tag needs a Key and a Value")
        if not (1 <= len(key) <= 128) or len(value) > 256 or not TAG_CHARS_RE.fullmatch(key) \
                or not TAG_CHARS_RE.fullmatch(value):
            return tags, transitive, arns, (400, "ValidationError", f"tag {key!r} fails STS's charset or length")
        if key.lower() in (k.lower() for k in tags):
            return tags, transitive, arns, (400, "InvalidParameterValue", f"duplicate tag key {key!r}")
        if key.lower().startswith("aws:"):
            return tags, transitive, arns, (400, "InvalidParameterValue", f"tag key {key!r} is reserved")
        tags[key] = value
    if len(tags) > MAX_TAGS:
        return tags, transitive, arns, (400, "ValidationError", "more than 50 session tags")
    tmembers = _members(params, "TransitiveTagKeys")
    if tmembers is None or any(set(m) != {""} for m in tmembers):
        return tags, transitive, arns, (400, "ValidationError", "TransitiveTagKeys malformed")
    transitive = [m[""] for m in tmembers]
    if any(k not in tags for k in transitive):
        return tags, transitive, arns, (400, "InvalidParameterValue", "a transitive key is not a session tag")
    pmembers = _members(params, "PolicyArns")
    if pmembers is None or any(set(m) != {".arn"} for m in pmembers):
        return tags, transitive, arns, (400, "ValidationError", "PolicyArns malformed")
    arns = [m[".arn"] for m in pmembers]
    if len(arns) > MAX_POLICY_ARNS or any(not (20 <= len(a) <= 2048) or not a.startswith("arn:") for a in arns):
        return tags, transitive, arns, (400, "ValidationError", "PolicyArns: at most 10 ARNs of 20..2048")
    return tags, transitive, arns, None


def packed_size(tags, arns):
    """A stand-in for STS's packed size of session tags and policies (its formula is not public)."""
    return sum(len(k) + len(v) for k, v in tags.items()) + sum(len(a) for a in arns)

def error_xml(code, message, kind="Sender"):
    rid = secrets.token_hex(16)
    return (f'<ErrorResponse xmlns="{NS}">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n'
            f'    <Message>{message}</Message>\n  </Error>\n  <RequestId>{rid}</RequestId>\n</ErrorResponse>\n')


# Replies with status 200 that are not AssumeRole replies (mode "garbage").
GARBAGE_BODIES = [
    f'<AssumeRoleResponse xmlns="{NS}"><AssumeRoleResult><Credentials><AccessKeyId>ASIAGARBAGE',
    f'<GetCallerIdentityResponse xmlns="{NS}"><GetCallerIdentityResult><Arn>arn:aws:iam::1:user/x</Arn>'
    '</GetCallerIdentityResult></GetCallerIdentityResponse>',
    '<html><body><h1>502 Bad Gateway</h1></body></html>',
    '',
    f'<AssumeRoleResponse xmlns="{NS}"><AssumeRoleResult><Credentials><AccessKeyId>not a key!</AccessKeyId>'
    '<SecretAccessKey></SecretAccessKey><Expiration>yesterday</Expiration></Credentials></AssumeRoleResult>'
    '</AssumeRoleResponse>',
    '\x00\xff<<<>>>&&&;',
]


class State:
    def __init__(self, access_key, secret_key, session_token, region=None):
        self.lock = threading.Lock()
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.calls = []
        self.identity_calls = 0  # GetCallerIdentity requests (not in calls: they are not AssumeRole)
        self.serial = 0
        self.release = threading.Event()
        self.reset()
        self.config["region"] = region

    def reset(self):
        self.config = {"mode": "ok", "delay": 0.0, "deny_roles": [], "expires_in": None,
                       "deny_tag_session": [], "packed_limit": None,
                       "region": getattr(self, "config", {}).get("region")}
        self.release.set()
        self.release = threading.Event()
        self.calls = []

    def configure(self, cfg):
        with self.lock:
            self.config.update(cfg)
            # a mode change ends any hang
            self.release.set()
            self.release = threading.Event()


def verify_signature(state, method, path, headers, body):
    """Returns None when the signature verifies, else (status, code, message)."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return 403, "IncompleteSignature", "Authorization header missing or not SigV4"
    fields = {}
    for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    try:
        access_key, date, region, service, term = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        fields["Signature"]
    except (KeyError, ValueError):
        return 403, "IncompleteSignature", "malformed Authorization header"
    if access_key != state.access_key:
        return 403, "InvalidClientTokenId", "The security token included in the request is invalid."
    if service != "sts" or term != "aws4_request":
        return 403, "SignatureDoesNotMatch", "wrong credential scope"
    if state.config.get("region") and region != state.config["region"]:
        return 403, "SignatureDoesNotMatch", f"credential scope names region {region}"
    if state.session_token is not None and headers.get("X-Amz-Security-Token") != state.session_token:
        return 403, "InvalidClientTokenId", "The security token included in the request is invalid."
    if "x-amz-security-token" not in signed and state.session_token is not None:
        return 403, "SignatureDoesNotMatch", "session token not signed"
    amz_date = headers.get("X-Amz-Date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return 403, "IncompleteSignature", "X-Amz-Date missing or malformed"
    if abs(datetime.datetime.now(datetime.timezone.utc) - when) > MAX_SKEW or date != amz_date[:8]:
        return 403, "SignatureDoesNotMatch", "Signature expired or date mismatch"

    to_sign = {}
    for name in signed:
        if name in ("x-amz-date", "x-amz-security-token", "authorization"):
            continue
        if headers.get(name) is None:
            return 403, "SignatureDoesNotMatch", f"signed header {name} missing"
        to_sign[name] = headers.get(name)
    host = headers.get("Host", "")
    req = AWSRequest(method=method, url=f"http://{host}{path}", data=body, headers=to_sign)
    creds = Credentials(state.access_key, state.secret_key, state.session_token)
    # botocore signs at "now": pin its clock to the request's X-Amz-Date. mock.patch swaps a
    # module global, so concurrent requests (ThreadingHTTPServer) must take turns.
    with _SIGN_LOCK, mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.now.return_value = when
        dt.datetime.utcnow.return_value = when.replace(tzinfo=None)
        SigV4Auth(creds, "sts", region).add_auth(req)
    if req.headers["Authorization"] != auth:
        return 403, "SignatureDoesNotMatch", ("The request signature we calculated does not match the signature "
                                              "you provided.")
    return None


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # answers go out in two writes: without this, Nagle holds the second for ~40 ms
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            pass

        def _send(self, code, body, ctype="text/xml"):
            data = body.encode() if isinstance(body, str) else body
            try:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", secrets.token_hex(8))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout during a hang): nothing to answer

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                raise ValueError("body too large")
            return self.rfile.read(n) if n > 0 else b""

        def do_GET(self):
            if self.path == "/_control/calls":
                with state.lock:
                    data = json.dumps(state.calls)
                return self._send(200, data, "application/json")
            self._send(404, error_xml("InvalidAction", "GET is not supported"))

        def do_POST(self):
            try:
                body = self._body()
            except ValueError:
                return self._send(413, error_xml("RequestEntityTooLarge", "too large"))
            if self.path == "/_control/reset":
                with state.lock:
                    state.reset()
                return self._send(200, "{}", "application/json")
            if self.path == "/_control/config":
                state.configure(json.loads(body or b"{}"))
                return self._send(200, "{}", "application/json")
            self._assume_role(body)

        def _assume_role(self, body):
            form = urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True)
            params = {k: v[0] for k, v in form.items()}
            with state.lock:
                cfg = dict(state.config)
                release = state.release
            if params.get("Action") == "AssumeRoleWithWebIdentity":
                return self._assume_role_with_web_identity(params, cfg)
            if params.get("Action") == "GetCallerIdentity":
                return self._get_caller_identity(body)
            call = {"role_arn": params.get("RoleArn"), "session_name": params.get("RoleSessionName"),
                    "duration": params.get("DurationSeconds"), "external_id": params.get("ExternalId"),
                    "content_type": self.headers.get("Content-Type"), "mode": cfg["mode"],
                    "time": time.monotonic()}
            bad = verify_signature(state, "POST", self.path, self.headers, body)
            if bad is None and (params.get("Action") != "AssumeRole" or params.get("Version") != "2011-06-15"
                                or not params.get("RoleArn") or not params.get("RoleSessionName")):
                bad = (400, "ValidationError", "missing or invalid AssumeRole parameters")
            if bad is None:
                dur = int(params.get("DurationSeconds") or 3600)
                if dur < 900 or dur > 43200:
                    bad = (400, "ValidationError", "DurationSeconds out of range")
            tags, transitive, arns, bad_params = check_session_params(params)
            call.update({"tags": tags, "transitive_tag_keys": transitive, "policy_arns": arns})
            if bad is None:
                bad = bad_params
            call["verified"] = bad is None or bad[1] == "ValidationError"
            with state.lock:
                state.calls.append(call)
            if cfg["delay"]:
                release.wait(cfg["delay"])
            if bad is not None:
                call["result"] = bad[1]
                return self._send(bad[0], error_xml(bad[1], bad[2]))
            mode = cfg["mode"]
            if mode == "hang":
                call["result"] = "hang"
                release.wait(3600)
                return self._send(500, error_xml("InternalFailure", "released from hang", "Receiver"))
            if mode == "throttle":
                call["result"] = "Throttling"
                return self._send(400, error_xml("Throttling", "Rate exceeded"))
            if mode == "error500":
                call["result"] = "InternalFailure"
                return self._send(500, error_xml("InternalFailure", "We encountered an internal error.", "Receiver"))
            if mode == "garbage":
                with state.lock:
                    state.serial += 1
                    n = state.serial
                call["result"] = "garbage"
                return self._send(200, GARBAGE_BODIES[n % len(GARBAGE_BODIES)])
            if tags and params["RoleArn"] in cfg["deny_tag_session"]:
                call["result"] = "AccessDenied"
                return self._send(403, error_xml(
                    "AccessDenied", f"User: arn:aws:sts::123456789012:assumed-role/node/i-0 is not authorized to "
                    f"perform: sts:TagSession on resource: {params['RoleArn']}"))
            if cfg["packed_limit"] is not None and packed_size(tags, arns) > cfg["packed_limit"]:
                call["result"] = "PackedPolicyTooLarge"
                return self._send(400, error_xml(
                    "PackedPolicyTooLarge", "Packed size of session tags and policies exceeds the limit"))
            if mode == "deny" or params["RoleArn"] in cfg["deny_roles"]:
                call["result"] = "AccessDenied"
                return self._send(403, error_xml(
                    "AccessDenied", f"User: arn:aws:sts::123456789012:assumed-role/node/i-0 is not authorized to "
                    f"perform: sts:AssumeRole on resource: {params['RoleArn']}"))
            with state.lock:
                state.serial += 1
                serial = state.serial
            key = "ASIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
            secret = secrets.token_urlsafe(30)[:40]
            token = "FwoGZXIvYXdzE" + secrets.token_urlsafe(600)
            life = cfg["expires_in"] if cfg["expires_in"] is not None else dur
            exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=life)
            # AWS writes Expiration with or without fractional seconds: alternate
            exp_s = exp.strftime("%Y-%m-%dT%H:%M:%S") + (f".{exp.microsecond // 1000:03d}Z" if serial % 2 else "Z")
            call.update({"result": "Success", "access_key_id": key, "secret_access_key": secret,
                         "session_token": token, "expiration": exp_s})
            role_name = params["RoleArn"].rsplit("/", 1)[-1]
            xml = (f'<AssumeRoleResponse xmlns="{NS}">\n  <AssumeRoleResult>\n'
                   f'    <AssumedRoleUser>\n      <AssumedRoleId>AROA{serial:016d}:{params["RoleSessionName"]}'
                   f'</AssumedRoleId>\n      <Arn>arn:aws:sts::123456789012:assumed-role/{role_name}/'
                   f'{params["RoleSessionName"]}</Arn>\n    </AssumedRoleUser>\n    <Credentials>\n'
                   f'      <SessionToken>{token}</SessionToken>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n'
                   f'      <Expiration>{exp_s}</Expiration>\n      <AccessKeyId>{key}</AccessKeyId>\n'
                   f'    </Credentials>\n  </AssumeRoleResult>\n  <ResponseMetadata>\n'
                   f'    <RequestId>{secrets.token_hex(16)}</RequestId>\n  </ResponseMetadata>\n'
                   f'</AssumeRoleResponse>\n')
            self._send(200, xml)

        def _get_caller_identity(self, body):
            """Who the signing credentials are, as AWS answers (never denied by a policy: only
            credentials that do not verify are refused)."""
            bad = verify_signature(state, "POST", self.path, self.headers, body)
            with state.lock:
                state.identity_calls += 1
            if bad is not None:
                return self._send(bad[0], error_xml(bad[1], bad[2]))
            self._send(200, f'<GetCallerIdentityResponse xmlns="{NS}">\n  <GetCallerIdentityResult>\n'
                            f'    <Arn>arn:aws:sts::123456789012:assumed-role/node/i-0123456789abcdef0</Arn>\n'
                            f'    <UserId>AROA1234567890EXAMPLE:i-0123456789abcdef0</UserId>\n'
                            f'    <Account>123456789012</Account>\n  </GetCallerIdentityResult>\n'
                            f'  <ResponseMetadata>\n    <RequestId>{secrets.token_hex(16)}</RequestId>\n'
                            f'  </ResponseMetadata>\n</GetCallerIdentityResponse>\n')

        def _assume_role_with_web_identity(self, params, cfg):
            """Unsigned, as AWS takes it: the token is the proof. Issues the node credentials the fake
            verifies AssumeRole signatures with, so what follows shows they were used."""
            call = {"action": "AssumeRoleWithWebIdentity", "role_arn": params.get("RoleArn"),
                    "session_name": params.get("RoleSessionName"), "duration": params.get("DurationSeconds"),
                    "signed": "Authorization" in self.headers, "time": time.monotonic()}
            with state.lock:
                state.calls.append(call)
            expected = cfg.get("web_identity_token")
            if not expected or params.get("WebIdentityToken") != expected:
                call["result"] = "InvalidIdentityToken"
                return self._send(400, error_xml("InvalidIdentityToken", "Couldn't retrieve verification key"))
            if call["signed"] or params.get("Version") != "2011-06-15" or not params.get("RoleArn"):
                call["result"] = "ValidationError"
                return self._send(400, error_xml("ValidationError", "unexpected AssumeRoleWithWebIdentity"))
            call["result"] = "Success"
            exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
                seconds=int(params.get("DurationSeconds") or 3600))
            token = f"<SessionToken>{state.session_token}</SessionToken>" if state.session_token else ""
            self._send(200, f'<AssumeRoleWithWebIdentityResponse xmlns="{NS}"><AssumeRoleWithWebIdentityResult>'
                            f'<Credentials>{token}<SecretAccessKey>{state.secret_key}</SecretAccessKey>'
                            f'<Expiration>{exp.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration>'
                            f'<AccessKeyId>{state.access_key}</AccessKeyId></Credentials>'
                            f'</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>'
                            f'{secrets.token_hex(16)}</RequestId></ResponseMetadata>'
                            f'</AssumeRoleWithWebIdentityResponse>')

    return Handler



class _Server(ThreadingHTTPServer):
    # the daemon opens many connections at once under load: socketserver's default backlog of 5
    # would drop some, which the daemon would rightly report as upstream failures
    request_queue_size = 128
    daemon_threads = True

class FakeSts:
    """In-process use: FakeSts(access_key, secret_key, token).start() -> .port; .stop()."""

    def __init__(self, access_key, secret_key, session_token=None, region=None, port=0, host="127.0.0.1"):
        self.state = State(access_key, secret_key, session_token, region)
        self.server = _Server((host, port), make_handler(self.state))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.state.configure({"mode": "ok"})
        self.server.shutdown()
        self.server.server_close()

    def calls(self):
        with self.state.lock:
            return [dict(c) for c in self.state.calls]

    def configure(self, **cfg):
        self.state.configure(cfg)

    def reset(self):
        with self.state.lock:
            self.state.reset()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--session-token")
    p.add_argument("--region")
    a = p.parse_args()
    fake = FakeSts(a.access_key, a.secret_key, a.session_token, a.region, a.port, a.host)
    print(f"READY {fake.port}", flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

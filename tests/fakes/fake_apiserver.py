# SPDX-License-Identifier: BSD-3-Clause
"""A fake Kubernetes API server speaking the real protocol for the daemon's list+watch client:
TLS with client-certificate verification and bearer tokens, paged lists (limit/continue) with
one consistent resourceVersion, chunked watch streams of newline-delimited JSON events (each
event split across chunks), bookmarks, HTTP 410 and in-stream ERROR 410, dropped and stalled
streams, 401 and 403 on demand. Controlled through its Python API while a client watches:

    srv = FakeApiServer(pki, tokens={"secret"}); srv.start()
    uid = srv.add_pod("web", "default", node="node-1", ip="10.0.0.5", role="r")
    srv.update_pod(uid, phase="Succeeded"); srv.delete_pod(uid)
    srv.add_namespace("default", {"iam.amazonaws.com/allowed-roles": '["r"]'})
    srv.add_service_account("app", "default", {"eks.amazonaws.com/role-arn": "arn:..."})
    srv.forbid_service_accounts = True  # 403 on /api/v1/serviceaccounts
    srv.compact()              # older resourceVersions now get HTTP 410
    srv.send_in_stream_410()   # running watches get an ERROR event with code 410
    srv.drop_watches(); srv.stall_watches(); srv.forbid_namespaces = True
    srv.pause(); srv.resume()  # connections refused meanwhile, state kept
    srv.add_pod("big", pad_bytes=1450 * 1024)  # a tenant's padded pod spec
    srv.error_next = 5; srv.error_only = "/api/v1/pods"  # 500s, for pods only
    srv.list_limits            # the limit= of every list request, in order
    srv.events                 # Events POSTed and accepted (validated as the API server does)
    srv.deny_access = {("list", "pods")}  # SelfSubjectAccessReview answers allowed: false
    srv.stop()

Only ever listens on 127.0.0.1."""

import base64
import copy
import json
import queue
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class _Watch:
    def __init__(self, kind, selector):
        self.kind = kind
        self.selector = selector
        self.queue = queue.Queue()
        self.dropped = False
        self.stalled = False


class FakeApiServer:
    def __init__(self, pki=None, tokens=(), node_cert_serials=None, page_size=None,
                 bookmark_interval=1.0, tls=True):
        self.pki = pki
        self.tokens = set(tokens)
        # serials of client certificates accepted; None = any certificate the CA signed
        self.node_cert_serials = node_cert_serials
        self.page_size = page_size
        self.bookmark_interval = bookmark_interval
        self.tls = tls
        self.forbid_namespaces = False
        self.forbid_service_accounts = False
        self.lock = threading.RLock()
        self.rv = 100
        self.pods = {}          # uid -> object
        self.namespaces = {}    # name -> object
        self.service_accounts = {}  # "namespace/name" -> object
        self.history = []       # (rv, kind, type, object)
        self.compacted_rv = 0
        self.watches = []
        self.continues = {}     # token -> (rv, remaining items); reusable until compact(), as etcd's
        self.list_limits = []   # the limit= of every list request, in order
        self.requests = []      # (method, path, auth kind)
        self.unauthorized_next = 0
        self.throttle_next = 0          # the next N requests get 429 with Retry-After: 1
        self.error_next = 0             # the next N requests get 500 (an overloaded or restarting server)
        self.error_only = None          # a path such as "/api/v1/pods": error_next applies to it alone
        self.expire_next_continue = False  # the next continue request gets 410
        self.events = []        # core/v1 Events POSTed and accepted, as created
        self.rejected_events = []  # (code, body) of Events refused as invalid
        self.access_reviews = []   # SelfSubjectAccessReview specs, in order
        self.deny_access = set()   # (verb, resource) a SelfSubjectAccessReview answers as not allowed
        self._httpd = None
        self._thread = None
        self.port = None

    # ---- control ----

    def start(self):
        server = self

        class Handler(_Handler):
            api = server

        class Httpd(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128  # socketserver's default of 5 drops connections under load

            def finish_request(self, request, client_address):
                if server.tls:
                    try:
                        request = server._ssl.wrap_socket(request, server_side=True)
                    except (ssl.SSLError, OSError):
                        return
                super().finish_request(request, client_address)

        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.pki.server_cert, self.pki.server_key)
            ctx.load_verify_locations(self.pki.ca_cert)
            ctx.verify_mode = ssl.CERT_OPTIONAL
            self._ssl = ctx
        # the same port again after pause(): clients reconnect where they were
        self._httpd = Httpd(("127.0.0.1", self.port or 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def stop(self):
        self.drop_watches()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    def pause(self):
        """An outage: open streams break and new connections are refused; the cluster's state is
        kept and resume() serves it again on the same port."""
        self.stop()

    def resume(self):
        return self.start()

    def _next_rv(self):
        self.rv += 1
        return str(self.rv)

    def _emit(self, kind, etype, obj):
        self.history.append((int(obj["metadata"]["resourceVersion"]), kind, etype, copy.deepcopy(obj)))
        for w in list(self.watches):
            if w.kind == kind and _matches(kind, obj, w.selector):
                w.queue.put({"type": etype, "object": obj})

    def add_pod(self, name, namespace="default", node="node-1", ip=None, ips=None, role=None,
                external_id=None, phase="Running", host_network=False, uid=None, annotations=None,
                pad_bytes=0, service_account="default"):
        """pad_bytes: that many bytes of container args after metadata, as a tenant's big pod spec
        (the real API server allows objects up to etcd's request limit, 1.5 MiB by default)."""
        with self.lock:
            uid = uid or str(uuid.uuid4())
            ann = dict(annotations or {})
            if role is not None:
                ann["iam.amazonaws.com/role"] = role
            if external_id is not None:
                ann["iam.amazonaws.com/external-id"] = external_id
            status = {"phase": phase}
            if ip:
                status["podIP"] = ip
                status["podIPs"] = [{"ip": x} for x in ([ip] + list(ips or []))]
            container = {"name": "c", "image": "busybox"}
            if pad_bytes:
                container["args"] = ["x" * pad_bytes]
            obj = {"kind": "Pod", "apiVersion": "v1",
                   "metadata": {"name": name, "namespace": namespace, "uid": uid,
                                "resourceVersion": self._next_rv(), "annotations": ann,
                                "labels": {"app": name}},
                   "spec": {"nodeName": node, "hostNetwork": host_network, "containers": [container],
                            "serviceAccountName": service_account},
                   "status": status}
            self.pods[uid] = obj
            self._emit("pods", "ADDED", obj)
            return uid

    def update_pod(self, uid, phase=None, role=None, ip=None, deleting=None, annotations=None):
        with self.lock:
            obj = copy.deepcopy(self.pods[uid])
            if phase is not None:
                obj["status"]["phase"] = phase
            if role is not None:
                obj["metadata"]["annotations"]["iam.amazonaws.com/role"] = role
            if annotations is not None:
                obj["metadata"]["annotations"].update(annotations)
            if ip is not None:
                obj["status"]["podIP"] = ip
                obj["status"]["podIPs"] = [{"ip": ip}]
            if deleting:
                obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self.pods[uid] = obj
            self._emit("pods", "MODIFIED", obj)

    def delete_pod(self, uid, silently=False):
        """Deletes a pod; silently=True records no event (a watch that missed it sees it only
        through a re-list)."""
        with self.lock:
            obj = self.pods.pop(uid)
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = self._next_rv()
            if not silently:
                self._emit("pods", "DELETED", obj)

    def add_namespace(self, name, annotations=None):
        with self.lock:
            etype = "MODIFIED" if name in self.namespaces else "ADDED"
            obj = {"kind": "Namespace", "apiVersion": "v1",
                   "metadata": {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": self._next_rv(),
                                "annotations": dict(annotations or {})},
                   "status": {"phase": "Active"}}
            self.namespaces[name] = obj
            self._emit("namespaces", etype, obj)

    def add_service_account(self, name, namespace="default", annotations=None):
        """Adds or replaces a ServiceAccount (MODIFIED when it exists)."""
        key = f"{namespace}/{name}"
        with self.lock:
            etype = "MODIFIED" if key in self.service_accounts else "ADDED"
            obj = {"kind": "ServiceAccount", "apiVersion": "v1",
                   "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                                "resourceVersion": self._next_rv(), "annotations": dict(annotations or {})}}
            self.service_accounts[key] = obj
            self._emit("serviceaccounts", etype, obj)

    def delete_service_account(self, name, namespace="default"):
        with self.lock:
            obj = copy.deepcopy(self.service_accounts.pop(f"{namespace}/{name}"))
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self._emit("serviceaccounts", "DELETED", obj)

    def add_namespaces_bulk(self, names):
        """Many namespaces at once, without events (for benchmarks before a client starts)."""
        with self.lock:
            for name in names:
                self.namespaces[name] = {
                    "kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": self._next_rv(),
                                 "annotations": {"iam.amazonaws.com/allowed-roles": '["role-%s"]' % name}},
                    "status": {"phase": "Active"}}

    def delete_namespace(self, name):
        with self.lock:
            obj = copy.deepcopy(self.namespaces.pop(name))
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self._emit("namespaces", "DELETED", obj)

    def compact(self):
        """History before now is gone: watches from an older resourceVersion get HTTP 410,
        continue tokens expire."""
        with self.lock:
            self.compacted_rv = self.rv
            self.history = []
            self.continues = {}

    def send_in_stream_410(self):
        with self.lock:
            self.compacted_rv = self.rv
            self.history = []
            for w in list(self.watches):
                w.queue.put({"type": "ERROR", "object": _status(
                    410, "Expired", "too old resource version: 1 (%d)" % self.rv)})

    def send_raw(self, line):
        """Puts raw bytes into every running watch (for malformed-event tests)."""
        with self.lock:
            for w in list(self.watches):
                w.queue.put(line)

    def drop_watches(self):
        with self.lock:
            for w in list(self.watches):
                w.dropped = True
                w.queue.put(None)

    def stall_watches(self):
        """The watches running now go silent (no events, no bookmarks, connection kept open);
        new watches are served normally."""
        with self.lock:
            for w in self.watches:
                w.stalled = True

    def lists(self, kind):
        """List requests (first pages and continuations) made for kind ("pods" or "namespaces")."""
        with self.lock:
            return [p for (m, p, _) in self.requests if m == "GET" and p.split("?")[0] == "/api/v1/" + kind
                    and "watch=1" not in p]

    def gets(self, path_prefix):
        """GETs of single objects whose path starts with path_prefix."""
        with self.lock:
            return [p for (m, p, _) in self.requests if m == "GET" and p.startswith(path_prefix)]

    def n_watches(self, kind=None):
        with self.lock:
            return len([w for w in self.watches if kind is None or w.kind == kind])

    def wait_watches(self, kind, n=1, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.n_watches(kind) >= n:
                return True
            time.sleep(0.05)
        return False


_KINDS = {"pods": "Pod", "namespaces": "Namespace", "serviceaccounts": "ServiceAccount"}


def _matches(kind, obj, selector):
    for key, value in selector.items():
        if key == "spec.nodeName" and obj.get("spec", {}).get("nodeName") != value:
            return False
        if key == "status.podIP" and obj.get("status", {}).get("podIP") != value:
            return False
        if key == "metadata.name" and obj["metadata"]["name"] != value:
            return False
    return True


def _selector(q):
    sel = {}
    for part in q.get("fieldSelector", [""])[0].split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            sel[k.strip()] = v.strip()
    return sel


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # answers go out in two writes: without this, Nagle holds the second for ~40 ms
    disable_nagle_algorithm = True
    api = None

    def log_message(self, fmt, *args):
        pass

    def _send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authenticate(self):
        api = self.api
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in api.tokens:
            return "token"
        if api.tls:
            cert = self.connection.getpeercert()
            if cert:
                serial = int(cert.get("serialNumber", "0"), 16)
                if api.node_cert_serials is None or serial in api.node_cert_serials:
                    return "cert"
        return None

    def do_GET(self):
        api = self.api
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        who = self._authenticate()
        with api.lock:
            api.requests.append(("GET", self.path, who))
            forced = api.unauthorized_next > 0
            if forced:
                api.unauthorized_next -= 1
        if who is None or forced:
            return self._send_json(401, _status(401, "Unauthorized", "Unauthorized"))
        with api.lock:
            throttled = api.throttle_next > 0
            if throttled:
                api.throttle_next -= 1
        with api.lock:
            failing = api.error_next > 0 and api.error_only in (None, url.path)
            if failing:
                api.error_next -= 1
        if failing:
            return self._send_json(500, _status(500, "InternalError", "an error on the server has prevented the "
                                                "request from succeeding"))
        if throttled:
            body = json.dumps(_status(429, "TooManyRequests", "too many requests, please try again later")).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if url.path == "/api/v1/pods":
            kind = "pods"
        elif url.path == "/api/v1/namespaces":
            kind = "namespaces"
            if api.forbid_namespaces:
                return self._send_json(403, _status(
                    403, "Forbidden", 'namespaces is forbidden: User "system:node:node-1" cannot list '
                    'resource "namespaces" in API group "" at the cluster scope'))
        elif url.path == "/api/v1/serviceaccounts":
            kind = "serviceaccounts"
            if api.forbid_service_accounts:
                return self._send_json(403, _status(
                    403, "Forbidden", 'serviceaccounts is forbidden: User "system:node:node-1" cannot list '
                    'resource "serviceaccounts" in API group "" at the cluster scope'))
        else:
            return self._get_one(url.path)
        if q.get("watch", ["0"])[0] in ("1", "true"):
            return self._watch(kind, q)
        return self._list(kind, q)

    # the API server's validation of a core/v1 Event that matters to a client: the namespace of
    # the path, the object's and the involved object's agree; reason and type are set; the message
    # fits (1 kB, as events.k8s.io's note)
    EVENT_MESSAGE_MAX = 1024

    def _event_invalid(self, ns, ev):
        meta = ev.get("metadata") or {}
        obj = ev.get("involvedObject") or {}
        if ev.get("kind") != "Event" or ev.get("apiVersion") != "v1":
            return "kind and apiVersion must be Event and v1"
        if meta.get("namespace", ns) != ns or obj.get("namespace") != ns:
            return "involvedObject.namespace: does not match event.namespace"
        if not (meta.get("name") or meta.get("generateName")):
            return "metadata.name or generateName: Required value"
        if obj.get("kind") != "Pod" or not obj.get("name") or not obj.get("uid"):
            return "involvedObject: a Pod with name and uid required"
        if not ev.get("reason") or len(ev["reason"]) > 128:
            return "reason: Required value, at most 128 characters"
        if ev.get("type") not in ("Normal", "Warning"):
            return "type: Unsupported value"
        if len(ev.get("message", "").encode()) > self.EVENT_MESSAGE_MAX:
            return "message: Too long: may not be longer than 1024"
        return None

    def _read_json(self):
        n = int(self.headers.get("Content-Length", "0"))
        if n <= 0 or n > 1024 * 1024 or "json" not in self.headers.get("Content-Type", ""):
            return None
        try:
            return json.loads(self.rfile.read(n))
        except ValueError:
            return None

    def do_POST(self):
        api = self.api
        path = urllib.parse.urlparse(self.path).path
        who = self._authenticate()
        with api.lock:
            api.requests.append(("POST", self.path, who))
        body = self._read_json()
        if who is None:
            return self._send_json(401, _status(401, "Unauthorized", "Unauthorized"))
        if body is None:
            return self._send_json(400, _status(400, "BadRequest", "the body is not a JSON object"))
        parts = path.split("/")
        if len(parts) == 6 and parts[:4] == ["", "api", "v1", "namespaces"] and parts[5] == "events":
            invalid = self._event_invalid(parts[4], body)
            with api.lock:
                if invalid:
                    api.rejected_events.append((422, body))
                    return self._send_json(422, _status(422, "Invalid", invalid))
                ev = copy.deepcopy(body)
                ev["metadata"]["namespace"] = parts[4]
                ev["metadata"]["name"] = ev["metadata"].get("name") or (
                    ev["metadata"]["generateName"] + uuid.uuid4().hex[:5])
                ev["metadata"]["resourceVersion"] = api._next_rv()
                api.events.append(ev)
            return self._send_json(201, ev)
        if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
            with api.lock:
                api.access_reviews.append(attrs)
                allowed = (attrs.get("verb"), attrs.get("resource")) not in api.deny_access
            review = copy.deepcopy(body)
            review["status"] = {"allowed": allowed}
            if not allowed:
                review["status"]["reason"] = "no RBAC policy matched"
            return self._send_json(201, review)
        return self._send_json(404, _status(404, "NotFound", "not found"))

    def _list(self, kind, q):
        api = self.api
        sel = _selector(q)
        limit = int(q.get("limit", ["0"])[0] or 0)
        with api.lock:
            api.list_limits.append(limit)
        if api.page_size:
            limit = min(limit or api.page_size, api.page_size)
        cont = q.get("continue", [None])[0]
        with api.lock:
            if cont:
                if api.expire_next_continue:
                    api.expire_next_continue = False
                    api.continues.pop(cont, None)
                if cont not in api.continues:
                    return self._send_json(410, _status(
                        410, "Expired", "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter."))
                # a token stays valid until compaction: a client may repeat a page (with a smaller limit)
                rv, items = api.continues[cont]
            else:
                store = {"pods": api.pods, "namespaces": api.namespaces,
                         "serviceaccounts": api.service_accounts}[kind]
                items = [copy.deepcopy(o) for o in store.values() if _matches(kind, o, sel)]
                rv = str(api.rv)
            page, rest = (items[:limit], items[limit:]) if limit else (items, [])
            meta = {"resourceVersion": rv}
            if rest:
                token = base64.b64encode(uuid.uuid4().bytes).decode()
                api.continues[token] = (rv, rest)
                meta["continue"] = token
        self._send_json(200, {"kind": _KINDS[kind] + "List", "apiVersion": "v1", "metadata": meta, "items": page})

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _write_event(self, ev):
        if isinstance(ev, (bytes, str)):
            line = ev.encode() if isinstance(ev, str) else ev
        else:
            line = json.dumps(ev).encode() + b"\n"
        # one event in two chunks, cut in the middle: clients must parse incrementally
        half = max(1, len(line) // 2)
        self._chunk(line[:half])
        self.wfile.flush()
        self._chunk(line[half:])
        self.wfile.flush()

    def _get_one(self, path):
        """GET of one object: /api/v1/namespaces/NS/pods/NAME or /api/v1/namespaces/NAME."""
        api = self.api
        parts = path.split("/")
        with api.lock:
            obj = None
            if len(parts) == 7 and parts[:4] == ["", "api", "v1", "namespaces"] and parts[5] == "pods":
                obj = next((o for o in api.pods.values() if o["metadata"]["namespace"] == parts[4]
                            and o["metadata"]["name"] == parts[6]), None)
                what = "pods \"%s\"" % parts[6]
            elif len(parts) == 5 and parts[:4] == ["", "api", "v1", "namespaces"]:
                if api.forbid_namespaces:
                    return self._send_json(403, _status(403, "Forbidden", "namespaces is forbidden"))
                obj = api.namespaces.get(parts[4])
                what = "namespaces \"%s\"" % parts[4]
            else:
                return self._send_json(404, _status(404, "NotFound", "not found"))
            obj = copy.deepcopy(obj)
        if obj is None:
            return self._send_json(404, _status(404, "NotFound", what + " not found"))
        return self._send_json(200, obj)

    def _watch(self, kind, q):
        api = self.api
        sel = _selector(q)
        rv = q.get("resourceVersion", [""])[0]
        timeout = int(q.get("timeoutSeconds", ["1800"])[0])
        bookmarks = q.get("allowWatchBookmarks", ["false"])[0] == "true"
        with api.lock:
            if rv and int(rv) < api.compacted_rv:
                return self._send_json(410, _status(
                    410, "Expired", "too old resource version: %s (%d)" % (rv, api.compacted_rv)))
            w = _Watch(kind, sel)
            backlog = [{"type": t, "object": o} for (r, k, t, o) in api.history
                       if k == kind and (not rv or r > int(rv)) and _matches(kind, o, sel)]
            api.watches.append(w)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            if len(backlog) > 100:
                # a long backlog (benchmarks) goes out in large chunks that still cut events anywhere
                blob = b"".join(json.dumps(ev).encode() + b"\n" for ev in backlog)
                for off in range(0, len(blob), 65521):
                    self._chunk(blob[off:off + 65521])
                self.wfile.flush()
            else:
                for ev in backlog:
                    self._write_event(ev)
            end = time.monotonic() + timeout
            next_bookmark = time.monotonic() + api.bookmark_interval
            while time.monotonic() < end:
                try:
                    ev = w.queue.get(timeout=0.1)
                except queue.Empty:
                    ev = False
                if w.dropped or ev is None:
                    # an abrupt end: no terminating chunk
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                while w.stalled and not w.dropped and time.monotonic() < end:
                    time.sleep(0.1)
                if w.dropped:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if ev:
                    self._write_event(ev)
                    if isinstance(ev, dict) and ev["type"] == "ERROR":
                        break
                if bookmarks and time.monotonic() >= next_bookmark and w.queue.empty():
                    with api.lock:
                        brv = str(api.rv)
                    self._write_event({"type": "BOOKMARK", "object": {
                        "kind": _KINDS[kind], "apiVersion": "v1",
                        "metadata": {"resourceVersion": brv}}})
                    next_bookmark = time.monotonic() + api.bookmark_interval
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError, ssl.SSLError):
            self.close_connection = True
        finally:
            with api.lock:
                if w in api.watches:
                    api.watches.remove(w)


if __name__ == "__main__":
    import sys
    import tempfile
    from apiserver_pki import Pki
    d = tempfile.mkdtemp()
    s = FakeApiServer(Pki(d), tokens={"test-token"}).start()
    print("listening on", s.url, "pki in", d)
    sys.stdout.flush()
    threading.Event().wait()

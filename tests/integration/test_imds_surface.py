# SPDX-License-Identifier: BSD-3-Clause
"""The metadata surface through the daemon (docs/imds-surface.md): a pod of this node walks AWS's
documented metadata tree; the fake IMDS (tests/fakes/fake_imds.py) has every path, including the
node's credentials on both the legacy and the extended API, and records what it is asked. Each
path is served by the daemon, forwarded, or refused, and the fake never sees a refused one."""

import http.client
import json

import pytest

from k2i_testlib import assert_no_secrets, wait_until
from node_env import ACCOUNT, BASE_ARN

FAST = ["--backoff-max-elapsed-time=300ms", "--backoff-max-interval=100ms"]
POD = "127.0.0.41"
STRANGER = "127.0.0.42"
MAC = "0e:11:22:33:44:55"
MD = "/latest/meta-data/"

FORWARDED = [MD + p for p in (
    "ami-id", "ami-launch-index", "ami-manifest-path", "ancestor-ami-ids", "autoscaling/target-lifecycle-state",
    "block-device-mapping/ami", "block-device-mapping/root", "block-device-mapping/ebs1",
    "elastic-gpus/associations/egpu-1", "elastic-inference/associations/eia-1", "events/maintenance/history",
    "events/maintenance/scheduled", "events/recommendations/rebalance", "hostname", "instance-action",
    "instance-id", "instance-life-cycle", "instance-type", "ipv6", "kernel-id", "local-hostname", "local-ipv4",
    "mac", "metrics/vhostmd", "network/interfaces/macs/", f"network/interfaces/macs/{MAC}/device-number",
    f"network/interfaces/macs/{MAC}/local-ipv4s", f"network/interfaces/macs/{MAC}/vpc-id", "placement/",
    "placement/availability-zone", "placement/availability-zone-id", "placement/group-name",
    "placement/host-id", "placement/partition-number", "placement/region", "product-codes", "public-hostname",
    "public-ipv4", "public-keys/", "public-keys/0/openssh-key", "ramdisk-id", "reservation-id",
    "security-groups", "services/domain", "services/partition", "spot/instance-action",
    "spot/termination-time", "tags/instance", "tags/instance/Name")] + [
    "/latest/dynamic/fws/instance-monitoring", "/latest/dynamic/instance-identity/document"]
WITHHELD = ["/latest/user-data", "/latest/dynamic/instance-identity/pkcs7",
            "/latest/dynamic/instance-identity/signature", "/latest/dynamic/instance-identity/rsa2048"]
REFUSED = [MD + "identity-credentials/ec2/info",
           MD + "identity-credentials/ec2/security-credentials/ec2-instance",
           MD + "iam/security-credentials-extendedX", MD + "iam/other", MD + "profile", MD + "no-such-category",
           MD + "Instance-Id", MD + "instance-id;x=1", MD + "instance-id/", "/foo/meta-data/instance-id",
           "/latest/other", "/debug/store"]
# listing -> what the pod sees of the fake's listing
LISTINGS = {
    "/": "1.0\n2007-01-19\n2021-03-23\nlatest",
    "/latest/": "dynamic\nmeta-data",
    MD: "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nevents/\nhostname\niam/\n"
        "instance-action\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\nmac\nnetwork/\nplacement/\n"
        "public-keys/\nreservation-id\nsecurity-groups\nservices/",
    "/latest/dynamic/": "fws/\ninstance-identity/",
    "/latest/dynamic/instance-identity/": "document",
    MD + "network/": "interfaces/",
}


def get(d, path, source=POD, method="GET", headers=None, timeout=10):
    c = http.client.HTTPConnection(d.host, d.port, timeout=timeout, source_address=(source, 0))
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def start(node_env, daemon_factory, *extra):
    node_env.add_pod("app", POD, role="app-role")
    d = daemon_factory(node_env.daemon_args(*FAST, f"--base-role-arn={BASE_ARN}", *extra))
    wait_until(lambda: json.loads(get(d, "/healthz")[1])["cachesSynced"], what="pod cache sync")
    return d


def forwarded(env):
    """What the fake got on a client's behalf: a forwarded request without a pod token carries
    X-Forwarded-For (the client); the daemon's own IMDS client (health check, node credentials)
    sends none."""
    return [q for q in env.imds.requests() if any(k.lower() == "x-forwarded-for" for k, _ in q["headers"])]


def seen(env, path):
    return [q for q in forwarded(env) if q["path"] == path]


def assert_imds_404(r, body):
    assert r.status == 404
    assert r.getheader("Content-Type") == "text/html" and b"<title>404 - Not Found</title>" in body


def test_a_pod_gets_exactly_the_table_walking_the_documented_tree(node_env, daemon_factory):
    d = start(node_env, daemon_factory)
    paths = node_env.imds.state.paths
    for p in FORWARDED:
        r, body = get(d, p)
        assert (r.status, body.decode()) == (200, paths[p]), p
        assert seen(node_env, p), p
    for p, want in LISTINGS.items():
        r, body = get(d, p)
        assert (r.status, body.decode()) == (200, want), p
    for p in WITHHELD + REFUSED:
        assert_imds_404(*get(d, p))
    # iam/ is the daemon's: listed locally, never asked upstream
    r, body = get(d, MD + "iam/")
    assert (r.status, body) == (200, b"info\nsecurity-credentials/")
    # all the fake got on the pod's behalf is the forwarded set (the daemon's own client asks for
    # the node's credentials, to sign its STS calls, and never on a pod's behalf)
    for_pod = {q["path"] for q in forwarded(node_env)}
    assert for_pod == set(FORWARDED) | set(LISTINGS), for_pod ^ (set(FORWARDED) | set(LISTINGS))
    for p in WITHHELD + REFUSED + [MD + "iam/", MD + "iam"]:
        assert p not in for_pod, p
    assert_no_secrets(d.output(), node_env)


def test_the_extended_credentials_api_serves_the_pods_role_not_the_nodes(node_env, daemon_factory):
    d = start(node_env, daemon_factory)
    r, body = get(d, MD + "iam/security-credentials-extended/")
    assert (r.status, body) == (200, b"app-role")
    r, body = get(d, MD + "iam/security-credentials-extended/app-role")
    assert r.status == 200 and r.getheader("Server") == "EC2ws"
    doc = json.loads(body)
    assert list(doc)[-2:] == ["Expiration", "AccountId"] and doc["AccountId"] == ACCOUNT
    assert doc["AccessKeyId"] != node_env.imds.access_key
    issued = {c["access_key_id"] for c in node_env.sts.calls() if c["role_arn"] == BASE_ARN + "app-role"}
    assert doc["AccessKeyId"] in issued
    # the legacy document is unchanged, and a wrong role is refused as on the legacy route
    legacy = json.loads(get(d, MD + "iam/security-credentials/app-role")[1])
    assert "AccountId" not in legacy
    r, body = get(d, MD + "iam/security-credentials-extended/node-role")
    assert r.status == 403 and b"Invalid role" in body
    assert not forwarded(node_env)
    metrics = get(d, "/metrics")[1].decode()
    assert 'handler="roleHandler"' in metrics and 'handler="securityCredentialsHandler"' in metrics


def test_an_address_that_is_no_pod_gets_no_metadata(node_env, daemon_factory):
    d = start(node_env, daemon_factory)
    for p in (MD + "instance-id", MD, "/"):
        r, body = get(d, p, source=STRANGER)
        assert r.status == 404 and b"node-1" not in body, p
    assert not forwarded(node_env)
    # the same address once its pod is synced gets it
    node_env.add_pod("late", STRANGER)
    wait_until(lambda: get(d, MD + "instance-id", source=STRANGER)[0].status == 200, what="late pod served")


def test_metadata_allow_forwards_withheld_entries_it_names_and_nothing_beyond_the_table(
        node_env, daemon_factory):
    d = start(node_env, daemon_factory, "--metadata-allow=/latest/meta-data/placement/*,/latest/user-data,"
              "/latest/dynamic/instance-identity/pkcs7,/latest/meta-data/identity-credentials/*,"
              "/latest/meta-data/profile")
    assert get(d, MD + "placement/region")[1] == b"us-east-1"
    assert get(d, "/latest/user-data")[1] == b"#!/bin/sh\necho node user data\n"
    assert get(d, "/latest/dynamic/instance-identity/pkcs7")[0].status == 200
    assert get(d, "/latest/")[1] == b"dynamic\nmeta-data\nuser-data"
    # narrowed: documented but not named
    for p in (MD + "instance-id", "/latest/dynamic/instance-identity/signature",
              MD + "identity-credentials/ec2/info", MD + "profile"):
        assert_imds_404(*get(d, p))
        assert not seen(node_env, p), p


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head_are_forwarded(node_env, daemon_factory, method):
    d = start(node_env, daemon_factory)
    r, _ = get(d, MD + "instance-id", method=method)
    assert r.status == 405
    assert get(d, MD + "instance-id", method="HEAD")[0].status == 200
    assert [q["method"] for q in seen(node_env, MD + "instance-id")] == ["HEAD"]

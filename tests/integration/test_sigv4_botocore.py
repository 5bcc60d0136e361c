# SPDX-License-Identifier: BSD-3-Clause
"""Our SigV4 signer agrees with botocore's SigV4Auth on a few hundred generated STS AssumeRole
requests (random role ARNs, session names, external ids, dates, regions, session tokens)."""
import base64
import os
import random
import subprocess
import urllib.parse
from datetime import datetime, timezone
from unittest import mock

import pytest

botocore = pytest.importorskip("botocore")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("KUBE2IAM_BUILD_DIR", os.path.join(ROOT, "build"))
TOOL = os.path.join(BUILD, "tests", "tools", "sigv4-sign")

N_REQUESTS = 300
WORD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
REGIONS = [("aws", "us-east-1", "amazonaws.com"), ("aws", "eu-west-3", "amazonaws.com"),
           ("aws-cn", "cn-north-1", "amazonaws.com.cn"), ("aws-us-gov", "us-gov-west-1", "amazonaws.com"),
           ("aws-iso", "us-iso-east-1", "c2s.ic.gov"), ("aws-eusc", "eusc-de-east-1", "amazonaws.eu")]


def rand_str(rng, alphabet, lo, hi):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def form(params):
    return "&".join(f"{urllib.parse.quote(k, safe='-._~')}={urllib.parse.quote(v, safe='-._~')}"
                    for k, v in params)


def gen_request(rng):
    partition, region, suffix = rng.choice(REGIONS)
    path = "/".join(rand_str(rng, WORD + "+=,.@-", 1, 20) for _ in range(rng.randint(0, 3)))
    role = f"arn:{partition}:iam::{rng.randint(0, 10**12 - 1):012d}:role/{path + '/' if path else ''}" \
        + rand_str(rng, WORD + "+=,.@-", 1, 64)
    params = [("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", role),
              ("RoleSessionName", rand_str(rng, WORD + "+=,.@-", 2, 64)),
              ("DurationSeconds", str(rng.randint(900, 43200)))]
    if rng.random() < 0.5:
        params.append(("ExternalId", rand_str(rng, WORD + "+=,.@:/-", 2, 1224)))
    token = None
    if rng.random() < 0.7:
        token = base64.b64encode(rng.randbytes(rng.randint(16, 1500))).decode()
    return {
        "access_key": "ASIA" + rand_str(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 16),
        "secret_key": base64.b64encode(rng.randbytes(30)).decode(),
        "token": token,
        "region": region,
        "host": f"sts.{region}.{suffix}",
        "time": rng.randint(1420070400, 2082758399),  # 2015 .. 2035
        "body": form(params),
    }


def botocore_sign(r):
    req = AWSRequest(method="POST", url=f"https://{r['host']}/", data=r["body"],
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    creds = Credentials(r["access_key"], r["secret_key"], r["token"])
    when = datetime.fromtimestamp(r["time"], tz=timezone.utc)
    with mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.now.return_value = when
        dt.datetime.utcnow.return_value = when.replace(tzinfo=None)
        SigV4Auth(creds, "sts", r["region"]).add_auth(req)
    return req.headers["X-Amz-Date"], req.headers["Authorization"]


def describe(r):
    lines = [f"access_key={r['access_key']}", f"secret_key={r['secret_key']}", f"region={r['region']}",
             "service=sts", f"time={r['time']}", "method=POST", "path=/", f"header=Host:{r['host']}",
             "header=Content-Type:application/x-www-form-urlencoded; charset=utf-8", f"body={r['body']}"]
    if r["token"]:
        lines.append(f"token={r['token']}")
    return "\n".join(lines) + "\n\n"


def test_sigv4_agrees_with_botocore_on_generated_sts_requests():
    if not os.access(TOOL, os.X_OK):
        pytest.skip(f"{TOOL} not built")
    rng = random.Random(20260508)
    reqs = [gen_request(rng) for _ in range(N_REQUESTS)]
    out = subprocess.run([TOOL], input="".join(describe(r) for r in reqs), capture_output=True, text=True,
                         check=True, timeout=120).stdout
    blocks = [b for b in out.split("\n\n") if b.strip()]
    assert len(blocks) == N_REQUESTS
    mismatches = 0
    for r, block in zip(reqs, blocks):
        ours = dict(line.split(": ", 1) for line in block.splitlines())
        date, auth = botocore_sign(r)
        if (ours["X-Amz-Date"], ours["Authorization"]) != (date, auth):
            mismatches += 1
            print("mismatch:", r["region"], r["time"], ours, auth)
    assert mismatches == 0

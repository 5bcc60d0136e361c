# SPDX-License-Identifier: BSD-3-Clause
"""The node's own AWS identity from the sources kube2iam's SDK read: a shared credentials file with
a profile, a web identity token file (AssumeRoleWithWebIdentity, unsigned), and a clear refusal for
the sources we do not support, instead of a silent fall-back to the instance profile."""

import json
import os
import subprocess
import tempfile

from k2i_testlib import binary, wait_until
from node_env import BASE_ARN

FAST = ["--backoff-max-elapsed-time=300ms", "--backoff-max-interval=100ms"]


def pod_credentials(d, ip):
    import http.client
    c = http.client.HTTPConnection(d.host, d.port, timeout=10, source_address=(ip, 0))
    c.request("GET", "/latest/meta-data/iam/security-credentials/app-role")
    r = c.getresponse()
    return r.status, r.read()


def start_without_instance_profile(node_env, daemon_factory, env):
    # the instance profile fails: whatever signs AssumeRole came from the configured source
    node_env.imds.configure(status=500)
    node_env.add_pod("app", "127.0.0.41", role="app-role")
    d = daemon_factory(node_env.daemon_args(*FAST, f"--base-role-arn={BASE_ARN}"),
                       env={"AWS_REGION": "us-east-1", **env})
    wait_until(lambda: "Listening on port" in d.output(), what="start line")
    return d


def test_profile_from_shared_credentials_file_signs_assume_role(node_env, daemon_factory, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = AKIAWRONGWRONGWRONG\naws_secret_access_key = x\n\n"
                     f"[ops]\naws_access_key_id = {node_env.imds.access_key}\n"
                     f"aws_secret_access_key = {node_env.imds.secret_key}\n"
                     f"aws_session_token = {node_env.imds.session_token}\n")
    d = start_without_instance_profile(node_env, daemon_factory, {
        "AWS_PROFILE": "ops", "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        "AWS_CONFIG_FILE": str(tmp_path / "none")})
    status, body = pod_credentials(d, "127.0.0.41")
    assert status == 200, body
    assert "node credentials from profile ops" in d.output()
    assert node_env.imds.secret_key not in d.output()


def test_web_identity_token_file_is_exchanged_unsigned_and_used(node_env, daemon_factory, tmp_path):
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.node-web-identity.sig\n")
    node_env.sts.configure(web_identity_token="eyJhbGciOiJSUzI1NiJ9.node-web-identity.sig")
    d = start_without_instance_profile(node_env, daemon_factory, {
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ROLE_ARN": BASE_ARN + "node-identity",
        "AWS_ROLE_SESSION_NAME": "node-1", "HOME": str(tmp_path)})
    wait_until(lambda: any(c.get("action") == "AssumeRoleWithWebIdentity" and c["result"] == "Success"
                           for c in node_env.sts.calls()), what="AssumeRoleWithWebIdentity")
    web = [c for c in node_env.sts.calls() if c.get("action")][0]
    assert web["signed"] is False and web["role_arn"] == BASE_ARN + "node-identity"
    assert web["session_name"] == "node-1"
    # the pod's prefetch may have run before the exchange: its retry (backoff) then succeeds
    wait_until(lambda: pod_credentials(d, "127.0.0.41")[0] == 200, what="pod credentials")
    status, body = pod_credentials(d, "127.0.0.41")
    assert json.loads(body)["Code"] == "Success"
    assert "web identity" in d.output()
    assert "node-web-identity" not in d.output()  # the token is never logged


def run_refused(env, tmp_path):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE2IAM_"))}
    full.update({"HOME": str(tmp_path), "AWS_REGION": "us-east-1"}, **env)
    r = subprocess.run([binary("kube2iam"), "--app-port=1", "--node=n", "--metadata-addr=127.0.0.1:9",
                        "--kubeconfig=/nonexistent"],
                       env=full, capture_output=True, text=True, timeout=20)
    return r.returncode, r.stderr


def test_unsupported_node_identity_sources_are_refused_with_one_clear_line(tmp_path):
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text(
        "[profile sso]\nsso_session = corp\n[profile chain]\nrole_arn = arn:aws:iam::1:role/x\n"
        "source_profile = default\n[default]\nregion = us-east-1\n")
    (tmp_path / ".aws" / "credentials").write_text("[proc]\ncredential_process = /bin/true\n")
    for env, text in (({"AWS_PROFILE": "proc"}, "credential_process"),
                      ({"AWS_PROFILE": "sso"}, "sso_session"),
                      ({"AWS_PROFILE": "chain"}, "source_profile"),
                      ({"AWS_PROFILE": "missing"}, "no such profile"),
                      ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"}, "container credentials"),
                      ({"AWS_ROLE_ARN": BASE_ARN + "x"}, "web identity token file")):
        rc, err = run_refused(env, tmp_path)
        assert rc != 0, (env, err)
        assert text in err, (env, err)

"""contrib/: the Packer template as HashiCorp's HCL parser reads it (no `packer validate` here), the
install script it runs, and the RBAC manifests."""
import fcntl
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pkg_helpers import REPO, need, run

PACKER = REPO / "contrib" / "packer"


# @cdktf/hcl2json is HashiCorp's own hcl/v2 parser (what Packer parses templates with) compiled to
# WebAssembly; pinned, installed from npm once into the test cache (scripts/install-deps.sh
# installs node and npm). No `packer validate`: it needs the Amazon plugin and AWS credentials.
HCL2JSON = "@cdktf/hcl2json@0.21.0"
HCL2JSON_JS = REPO / "tests" / "tools" / "hcl2json.js"


@pytest.fixture(scope="module")
def hcl_parser():
    need("node", "npm")
    cache = Path(os.environ.get("KUBE2IAM_TEST_CACHE", "/var/cache/kube2iam-tests"))
    prefix = cache / ("hcl2json-" + HCL2JSON.rsplit("@", 1)[1])
    prefix.mkdir(parents=True, exist_ok=True)
    with open(cache / "hcl2json.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (prefix / "node_modules" / "@cdktf" / "hcl2json" / "package.json").is_file():
            run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save", HCL2JSON])

    def parse(path):
        p = subprocess.run(["node", str(HCL2JSON_JS), str(path)], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "NODE_PATH": str(prefix / "node_modules")})
        return p.returncode, p.stdout, p.stderr
    return parse


@pytest.fixture(scope="module")
def template(hcl_parser):
    rc, out, err = hcl_parser(PACKER / "kube2iam.pkr.hcl")
    assert rc == 0, err
    return json.loads(out)


def strings(node):
    """Every string in a parsed template (expressions appear as "${...}" strings)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def test_hcl_parser_rejects_a_broken_template(hcl_parser, tmp_path):
    broken = tmp_path / "broken.pkr.hcl"
    broken.write_text((PACKER / "kube2iam.pkr.hcl").read_text().replace("build {", "build {{", 1))
    rc, _, err = hcl_parser(broken)
    assert rc != 0 and "broken.pkr.hcl" in err, err


def test_packer_requires_a_packer_with_endswith_and_pins_the_amazon_plugin(template):
    (packer,) = template["packer"]
    m = re.fullmatch(r">= ?(\d+)\.(\d+)(?:\.\d+)?", packer["required_version"])
    assert m and (int(m[1]), int(m[2])) >= (1, 13), packer["required_version"]
    (plugins,) = packer["required_plugins"]
    assert plugins["amazon"]["source"] == "github.com/hashicorp/amazon"
    assert re.fullmatch(r"= ?\d+\.\d+\.\d+", plugins["amazon"]["version"]), plugins["amazon"]


def variants(template):
    """{name: settings} of the images the build makes: the shared top-level source with each
    build-level source's additions (Packer forbids a build-level source to change a set value)."""
    (base,) = template["source"]["amazon-ebs"]["node"]
    (build,) = template["build"]
    out = {}
    for extra in build["source"]["source.amazon-ebs.node"]:
        assert not set(extra) - {"name"} & set(base), f"{extra['name']} overrides {set(extra) & set(base)}"
        out[extra["name"]] = {**base, **extra}
    return out


def test_packer_builds_al2023_and_ubuntu_images_that_require_imdsv2(template):
    images = variants(template)
    assert set(images) == {"al2023", "ubuntu"}
    for name, src in images.items():
        # imds_support is the image's own setting; metadata_options only the build instance's
        assert src["imds_support"] == "v2.0", name
        (opts,) = src["metadata_options"]
        assert opts["http_tokens"] == "required", name
    assert {"al2023": "ec2-user", "ubuntu": "ubuntu"} == {n: s["ssh_username"] for n, s in images.items()}


def test_packer_sources_filter_by_architecture_and_a_pinned_release(template):
    variables = template["variable"]
    (arch,) = variables["architecture"]
    assert arch["default"] == "x86_64"
    assert "arm64" in arch["validation"][0]["condition"]
    owners = {"al2023": "602401143452", "ubuntu": "099720109477"}
    for name, src in variants(template).items():
        (flt,) = src["source_ami_filter"]
        assert flt["owners"] == [owners[name]] and flt["most_recent"] is True
        assert flt["filters"]["architecture"] == "${var.architecture}", name
        release = f"${{var.{name}_release}}"
        assert flt["filters"]["name"].endswith(release), flt["filters"]["name"]
        (release_var,) = variables[f"{name}_release"]
        assert re.fullmatch(r"v?\d{8}(\.\d+)?", release_var["default"]), release_var["default"]


def test_packer_template_uses_only_declared_variables_and_locals(template):
    used = " ".join(strings(template))
    declared = set(template["variable"])
    assert set(re.findall(r"\bvar\.([A-Za-z_]\w*)", used)) <= declared
    local_names = {k for block in template["locals"] for k in block}
    assert set(re.findall(r"\blocal\.([A-Za-z_]\w*)", used)) <= local_names
    for pkg, suffix in (("rpm_package", ".rpm"), ("deb_package", ".deb")):
        (var,) = template["variable"][pkg]
        assert f'endswith(var.{pkg}, "{suffix}")' in var["validation"][0]["condition"]


def test_packer_template_file_references_exist(template):
    refs = re.findall(r"\$\{path\.root\}/([^\"}\s]+)", " ".join(strings(template)))
    assert refs, "the template runs no script from its folder"
    for ref in refs:
        assert (PACKER / ref).is_file(), f"{ref} referenced by the template does not exist"
    assert (PACKER / "README.md").is_file()


def test_packer_install_script_is_valid_sh_and_enables_both_units():
    script = PACKER / "install-kube2iam.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-s", "sh", str(script)], check=True)
    text = script.read_text()
    assert "systemctl enable kube2iam.socket kube2iam.service" in text
    assert "/etc/sysconfig/kube2iam" in text and "/etc/default/kube2iam" in text


def test_rbac_manifests_grant_only_reads_and_creating_events():
    for name in ("namespaces-for-nodes.yaml", "kube2iam-user.yaml"):
        text = (REPO / "contrib" / "rbac" / name).read_text()
        rules = re.findall(r"resources:\s*\[([^\]]*)\]\s*\n\s*verbs:\s*\[([^\]]*)\]", text)
        assert rules
        for resources, verbs in rules:
            res = {x.strip().strip('"') for x in resources.split(",")}
            verbs = {x.strip().strip('"') for x in verbs.split(",")}
            # reads, and creating Events for --pod-events: nothing that changes a pod or namespace
            assert verbs <= {"get", "list", "watch"} or (res == {"events"} and verbs == {"create"}), (res, verbs)
    nodes = (REPO / "contrib" / "rbac" / "namespaces-for-nodes.yaml").read_text()
    assert 'resources: ["namespaces"]' in nodes and "name: system:nodes" in nodes
    # --service-account-roles: the Node authorizer gives a kubelet no read of ServiceAccounts
    assert 'resources: ["serviceaccounts"]\n    verbs: ["list", "watch"]' in nodes


def test_rbac_manifests_parse_as_yaml_when_pyyaml_is_there():
    yaml = pytest.importorskip("yaml")
    for name in ("namespaces-for-nodes.yaml", "kube2iam-user.yaml"):
        docs = list(yaml.safe_load_all((REPO / "contrib" / "rbac" / name).read_text()))
        assert [d["kind"] for d in docs] == ["ClusterRole", "ClusterRoleBinding"]
        assert docs[1]["roleRef"]["name"] == docs[0]["metadata"]["name"]

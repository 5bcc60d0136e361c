"""contrib/: the Packer template's structure and file references (no `packer validate` here), the
install script it runs, and the RBAC manifests."""
import re
import shutil
import subprocess

import pytest

from pkg_helpers import REPO

PACKER = REPO / "contrib" / "packer"


def strip_hcl(text):
    """The template without comments and with string contents blanked (interpolations kept), so
    braces and references can be counted."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif c == '"':
            j = i + 1
            buf = []
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                elif text.startswith("${", j):
                    k = text.index("}", j)
                    buf.append(text[j:k + 1])
                    j = k
                j += 1
            out.append('"' + " ".join(buf) + '"')
            i = j + 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def top_level_blocks(text):
    """[(type, [labels])] of the blocks at depth 0."""
    blocks, depth = [], 0
    raw = text
    for m in re.finditer(r'[{}]|^\s*([A-Za-z_][\w-]*)((?:\s+"[^"]*")*)\s*\{', raw, re.M):
        if m.group(1) is not None:
            if depth == 0:
                labels = re.findall(r'"([^"]*)"', m.group(2))
                blocks.append((m.group(1), labels))
            depth += 1
        elif m.group(0) == "{":
            depth += 1
        else:
            depth -= 1
            assert depth >= 0, "unbalanced }"
    assert depth == 0, "unbalanced {"
    return blocks


@pytest.fixture(scope="module")
def template():
    return (PACKER / "kube2iam.pkr.hcl").read_text()


def test_packer_template_has_plugin_source_and_build(template):
    # Labels are read from the original text; strings are blanked in the stripped copy.
    blocks = top_level_blocks(template)
    kinds = [b[0] for b in blocks]
    assert kinds.count("packer") == 1 and kinds.count("build") == 1
    sources = [tuple(b[1]) for b in blocks if b[0] == "source"]
    assert ("amazon-ebs", "node") in sources
    assert 'source  = "github.com/hashicorp/amazon"' in template
    for ref in re.findall(r'"source\.([\w-]+)\.([\w-]+)"', template):
        assert ref in sources, f"build refers to undeclared source {ref}"


def test_packer_template_braces_balance_and_references_are_declared(template):
    stripped = strip_hcl(template)
    assert stripped.count("{") == stripped.count("}")
    declared = set(re.findall(r'^variable\s+"([\w-]+)"', template, re.M))
    used = set(re.findall(r"\bvar\.([A-Za-z_]\w*)", stripped))
    assert used and used <= declared, f"undeclared variables: {used - declared}"
    locals_block = re.search(r"^locals\s*\{(.*?)^\}", template, re.M | re.S).group(1)
    local_names = set(re.findall(r"^\s*([A-Za-z_]\w*)\s*=", locals_block, re.M))
    assert set(re.findall(r"\blocal\.([A-Za-z_]\w*)", stripped)) <= local_names
    assert "package" in declared and not re.search(
        r'variable\s+"package"\s*\{[^}]*default', template), "the package path must be required"


def test_packer_template_file_references_exist(template):
    refs = re.findall(r"\$\{path\.root\}/([^\"}\s]+)", template)
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


def test_rbac_manifests_grant_only_reads():
    for name in ("namespaces-for-nodes.yaml", "kube2iam-user.yaml"):
        text = (REPO / "contrib" / "rbac" / name).read_text()
        verbs = re.findall(r"verbs:\s*\[([^\]]*)\]", text)
        assert verbs
        for v in verbs:
            assert {x.strip().strip('"') for x in v.split(",")} == {"get", "list", "watch"}
    nodes = (REPO / "contrib" / "rbac" / "namespaces-for-nodes.yaml").read_text()
    assert 'resources: ["namespaces"]' in nodes and "name: system:nodes" in nodes


def test_rbac_manifests_parse_as_yaml_when_pyyaml_is_there():
    yaml = pytest.importorskip("yaml")
    for name in ("namespaces-for-nodes.yaml", "kube2iam-user.yaml"):
        docs = list(yaml.safe_load_all((REPO / "contrib" / "rbac" / name).read_text()))
        assert [d["kind"] for d in docs] == ["ClusterRole", "ClusterRoleBinding"]
        assert docs[1]["roleRef"]["name"] == docs[0]["metadata"]["name"]

# SPDX-License-Identifier: BSD-3-Clause
"""What an operator reads and types cannot drift from the code: the man pages document exactly the
flags of --help, the journal catalog explains every MESSAGE_ID of src/basic/log.h (checked with
journalctl's own catalog compiler against a temporary root), and bash completion offers every
flag of --help."""

import os
import re
import shutil
import subprocess

import pytest

from k2i_testlib import REPO, binary, message_ids

PACKAGING = os.path.join(REPO, "packaging")
CATALOG = os.path.join(PACKAGING, "kube2iam.catalog")
COMPLETION = os.path.join(PACKAGING, "kube2iam.bash-completion")


def help_flags(program):
    r = subprocess.run([binary(program), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    flags = re.findall(r"^  (--[a-z0-9-]+)", r.stdout, re.M)
    assert len(flags) >= 10, r.stdout
    return set(flags)


def man_options(page):
    """The flags with an entry (.TP then .B/.BI --flag) in the OPTIONS section of a man page."""
    with open(os.path.join(PACKAGING, page), encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    entries = re.findall(r'^\.TP\n\.BI? "?((?:\\-){2}[a-z0-9\\-]+)', section, re.M)
    return {e.replace("\\-", "-") for e in entries}


@pytest.mark.parametrize("program,page", [("kube2iam", "kube2iam.8"), ("kube2iam-nft", "kube2iam-nft.8")])
def test_man_page_documents_exactly_the_flags_of_help(program, page):
    assert man_options(page) == help_flags(program)


@pytest.mark.parametrize("page", ["kube2iam.8", "kube2iam-nft.8"])
def test_man_page_renders_without_warnings(page):
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    r = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(PACKAGING, page)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_man_page_has_the_sections_an_operator_looks_for():
    with open(os.path.join(PACKAGING, "kube2iam.8"), encoding="utf-8") as f:
        text = f.read()
    for section in ("OPTIONS", "ENVIRONMENT", "FILES", "EXIT STATUS", "JOURNAL FIELDS", "EXAMPLES"):
        assert f"\n.SH {section}\n" in text, section
    exits = text.split("\n.SH EXIT STATUS\n", 1)[1].split("\n.SH ", 1)[0]
    assert re.findall(r"^\.B ([0-9])$", exits, re.M) == [str(n) for n in range(7)]
    # every MESSAGE_ID the daemon logs is named, so `journalctl MESSAGE_ID=...` can be typed from it
    for name, mid in message_ids().items():
        assert mid in text, name


def test_nft_help_lists_the_exit_statuses_its_man_page_documents():
    r = subprocess.run([binary("kube2iam-nft"), "--help"], capture_output=True, text=True, timeout=10)
    with open(os.path.join(PACKAGING, "kube2iam-nft.8"), encoding="utf-8") as f:
        exits = f.read().split("\n.SH EXIT STATUS\n", 1)[1].split("\n.SH ", 1)[0]
    assert re.findall(r"^\.B ([0-9])$", exits, re.M) == [str(n) for n in range(7)]
    for n in range(7):
        assert re.search(rf"\b{n} [a-z]", r.stdout), n


def test_message_ids_are_random_ids_and_distinct():
    ids = message_ids()
    assert set(ids) >= {"STARTED", "REDIRECT", "ROLE_DENIED", "STS_FAILURE", "CREDS_ISSUED", "STOPPING"}
    assert len(set(ids.values())) == len(ids)
    for mid in ids.values():
        # `systemd-id128 new` makes v4 UUIDs: version nibble 4, variant 8..b
        assert mid[12] == "4" and mid[16] in "89ab", mid


def test_catalog_explains_every_message_id(tmp_path):
    journalctl = shutil.which("journalctl")
    if not journalctl:
        pytest.skip("journalctl is not installed")
    with open(CATALOG, encoding="utf-8") as f:
        in_catalog = re.findall(r"^-- ([0-9a-f]{32})$", f.read(), re.M)
    assert sorted(in_catalog) == sorted(message_ids().values())

    catalogdir = tmp_path / "usr" / "lib" / "systemd" / "catalog"
    catalogdir.mkdir(parents=True)
    shutil.copy(CATALOG, catalogdir / "kube2iam.catalog")
    r = subprocess.run([journalctl, f"--root={tmp_path}", "--update-catalog"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert (tmp_path / "var" / "lib" / "systemd" / "catalog" / "database").stat().st_size > 0
    r = subprocess.run([journalctl, f"--root={tmp_path}", "--list-catalog"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    listed = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    for name, mid in message_ids().items():
        assert listed.get(mid, "").startswith("kube2iam: "), name
        r = subprocess.run([journalctl, f"--root={tmp_path}", "--dump-catalog", mid], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and "Documentation: man:kube2iam" in r.stdout, (name, r.stdout)


def complete(words, command="kube2iam"):
    """COMPREPLY for the command line `words` (the last one being completed), as bash computes it
    after sourcing the completion file."""
    script = (f'source "{COMPLETION}"\n'
              'complete -p kube2iam kube2iam-nft >&2\n'
              'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))\n'
              f'_kube2iam_complete {command} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD - 1]}}"\n'
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", command] + words,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert "complete -F _kube2iam_complete kube2iam" in r.stderr
    assert "complete -F _kube2iam_complete kube2iam-nft" in r.stderr
    return [w for w in r.stdout.splitlines() if w]


@pytest.mark.parametrize("program", ["kube2iam", "kube2iam-nft"])
def test_bash_completion_offers_every_flag_of_help(program):
    assert set(complete(["--"], program)) == help_flags(program)


def test_bash_completion_offers_values_and_subcommands():
    assert complete(["--log-level", "d"]) == ["debug"]
    # bash splits at '=' (COMP_WORDBREAKS) and replaces only the value; without that, the word
    assert complete(["--log-format", "="]) == ["text", "json"]
    assert complete(["--log-level", "=", "w"]) == ["warn"]
    assert complete(["--log-format="]) == ["--log-format=text", "--log-format=json"]
    assert complete(["--namespace-restriction-format", ""]) == ["glob", "regexp"]
    assert complete(["--debug=f"]) == ["--debug=false"]
    assert complete(["--prefetch", "="]) == ["true", "false"]
    assert complete(["--host-ip", "10"]) == []  # a value, not a flag or a subcommand
    assert complete(["--app-port=8181", ""], "kube2iam-nft") == ["install", "remove", "check"]
    assert complete(["check", ""], "kube2iam-nft") == []
    assert complete([""], "/usr/sbin/kube2iam-nft") == ["install", "remove", "check"]
    assert complete([""]) == sorted(help_commands())
    assert complete(["explain", "--"]) == ["--json"]
    assert complete(["explain", "default/app", ""]) == []


def help_commands():
    r = subprocess.run([binary("kube2iam"), "--help"], capture_output=True, text=True, timeout=10)
    section = r.stdout.split("\nCommands", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^  ([a-z]+) ", section, re.M))


def test_man_page_and_completion_name_every_command_of_help():
    commands = help_commands()
    assert "explain" in commands
    with open(os.path.join(PACKAGING, "kube2iam.8"), encoding="utf-8") as f:
        text = f.read()
    synopsis = text.split("\n.SH SYNOPSIS\n", 1)[1].split("\n.SH ", 1)[0]
    commands_section = text.split("\n.SH COMMANDS\n", 1)[1].split("\n.SH ", 1)[0]
    for c in commands:
        assert f".B kube2iam {c}" in synopsis, c
        assert re.search(rf"^\.B(?:I)? \"?{c}\b", commands_section, re.M), c
    assert set(complete([""])) == commands


def test_help_says_where_the_kubeconfig_is_searched():
    r = subprocess.run([binary("kube2iam"), "--help"], capture_output=True, text=True, timeout=10)
    line = next(line for line in r.stdout.splitlines() if line.startswith("  --kubeconfig"))
    with open(os.path.join(REPO, "src", "kube", "kubeconfig.h"), encoding="utf-8") as f:
        defaults = re.search(r"#define KUBECONFIG_DEFAULT_PATHS (.*)", f.read()).group(1)
    paths = re.findall(r'"([^"]+)"', defaults)
    assert paths and all(p in line for p in paths), line
    assert "--api-server" in line


def test_nft_help_lists_only_the_flags_that_change_what_it_does():
    assert help_flags("kube2iam-nft") == {
        "--app-port", "--host-interface", "--host-ip", "--host-ipv6", "--ipv6", "--metadata-addr",
        "--log-format", "--log-level", "--verbose", "--help", "--version"}
    # the others are still accepted: it reads the daemon's KUBE2IAM_ARGS
    r = subprocess.run([binary("kube2iam-nft"), "--help"], capture_output=True, text=True, timeout=10,
                       env={**os.environ, "KUBE2IAM_ARGS": "--base-role-arn=arn:aws:iam::1:role/ --debug"})
    assert r.returncode == 0, r.stderr


def test_repository_cites_only_its_own_docs():
    """The repository and its packages stand alone: comments, units, scripts and tests cite docs/,
    never design notes or references kept outside the tree."""
    outside = re.compile(r"\b(?:DESIGN|TESTING|STYLE)" r"\.md\b|\.\./shared\b|\bshared/(?:reference|vectors)\b"
                         r"|(?<![\w/.-])reference/[\w-]+" r"\.md\b")
    files = subprocess.run(["git", "-C", REPO, "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    hits = []
    for name in files:
        if name.startswith("tests/vectors/"):
            continue
        try:
            with open(os.path.join(REPO, name), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        hits += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in outside.finditer(text)]
    assert not hits, "\n".join(hits)

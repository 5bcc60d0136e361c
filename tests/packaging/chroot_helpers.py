"""Debian chroots for the packaging suite: cached tarballs (build-chroot.sh), unpacked per test
session and entered with systemd-nspawn (its own /proc, /dev and /tmp; no network unless asked)."""
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from pkg_helpers import run

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("KUBE2IAM_TEST_CACHE", "/var/cache/kube2iam-tests"))
TOOLS = ["debootstrap", "systemd-nspawn", "tar", "git", "flock"]


def need_root_and_tools():
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, systemd-nspawn)")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {' '.join(missing)} (scripts/install-deps.sh installs them)")


def chroot(workdir, suite, kind, control=None):
    """Unpacks the cached chroot SUITE/KIND (built on first use) into a fresh directory."""
    cmd = [str(HERE / "build-chroot.sh"), str(CACHE), suite, kind]
    if control:
        cmd.append(str(control))
    tarball = run(cmd).stdout.strip().splitlines()[-1]
    root = Path(workdir) / f"{suite}-{kind}-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    run(["tar", "-C", str(root), "-xf", tarball])
    return root


def nspawn(root, *cmd, chdir=None, check=True):
    """Runs cmd in the chroot as root, without network; returns the CompletedProcess."""
    args = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "--private-network",
            "-M", f"k2i-pkg-{uuid.uuid4().hex[:8]}", "-D", str(root),
            "--setenv=DEBIAN_FRONTEND=noninteractive"]
    if chdir:
        args.append(f"--chdir={chdir}")
    return run(args + list(cmd), check=check)


def libc_at_least(deb):
    """The glibc version the .deb's Depends asks for (dpkg-shlibdeps from the binaries' symbols),
    as a list of ints."""
    depends = run(["dpkg-deb", "-f", str(deb), "Depends"]).stdout
    m = re.search(r"libc6 \(>= ([\d.]+)\)", depends)
    assert m, depends
    return [int(x) for x in m.group(1).split(".")]


def remove(root):
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)

"""Fixtures of the packaging suite: a clean clone of the repository, and the packages built from it.

Everything is built once per session under one temporary directory, from a `git clone` of the
current HEAD (so uncommitted changes are not in it, exactly as in CI).
"""
import subprocess

import pytest

from pkg_helpers import REPO, RPM_MACROS, meson_version, need, run


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("kube2iam-packaging")


@pytest.fixture(scope="session")
def clone(workdir):
    need("git")
    dst = workdir / "src"
    run(["git", "clone", "-q", str(REPO), str(dst)])
    return dst


@pytest.fixture(scope="session")
def deb(workdir, clone):
    """Builds the .deb exactly as docs/testing.md says; returns {'deb', 'changes', 'dir'}."""
    need("dpkg-buildpackage", "dh")
    # dpkg-buildpackage writes its results into the parent of the source tree.
    tree = workdir / "deb" / "kube2iam"
    tree.parent.mkdir()
    run(["git", "clone", "-q", str(clone), str(tree)])
    run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree)
    version = meson_version(clone)
    debs = [p for p in tree.parent.glob(f"kube2iam_{version}_*.deb")]
    changes = list(tree.parent.glob(f"kube2iam_{version}_*.changes"))
    assert len(debs) == 1 and len(changes) == 1, f"build left {list(tree.parent.iterdir())}"
    out = workdir / "deb" / "root"
    run(["dpkg-deb", "-x", str(debs[0]), str(out)])
    ctl = workdir / "deb" / "control"
    run(["dpkg-deb", "-e", str(debs[0]), str(ctl)])
    return {"deb": debs[0], "changes": changes[0], "root": out, "control": ctl}


@pytest.fixture(scope="session")
def rpm(workdir, clone):
    """Builds the .rpm as a user would from a tag: `rpmbuild -ta` on a `git archive` tarball, with
    the fallback macros (docs/testing.md, packages); returns {'rpm', 'root', 'db', 'spec',
    'tarball'}."""
    need("rpmbuild", "rpm", "rpm2archive", "tar", "git")
    top = workdir / "rpm"
    top.mkdir()
    name = f"kube2iam-{meson_version(clone)}"
    tarball = top / f"{name}.tar.gz"
    run(["git", "archive", f"--prefix={name}/", "-o", str(tarball), "HEAD"], cwd=clone)
    db = top / "db"
    db.mkdir()
    run(["rpmbuild", "-ta", "--nodeps", "--load", str(RPM_MACROS),
         "--define", f"_topdir {top}", "--define", f"_tmppath {top / 'tmp'}",
         "--dbpath", str(db), str(tarball)])
    rpms = list((top / "RPMS").glob("*/kube2iam-*.rpm"))
    assert len(rpms) == 1, rpms
    root = top / "root"
    root.mkdir()
    # rpm2archive (from Debian's rpm2cpio package) turns the payload into a tar: no cpio needed.
    with open(rpms[0], "rb") as f:
        tgz = subprocess.run(["rpm2archive", "-"], stdin=f, stdout=subprocess.PIPE,
                             check=True).stdout
    subprocess.run(["tar", "-xzf", "-", "-C", str(root)], input=tgz, check=True)
    return {"rpm": rpms[0], "root": root, "db": db, "spec": clone / "kube2iam.spec",
            "tarball": tarball}


@pytest.fixture(scope="session")
def installed_units(workdir, clone):
    """The units as meson installs them, under a prefix in the temp dir, so that ExecStart= paths
    exist for `systemd-analyze verify`, with a stand-in kubelet.service beside the drop-in."""
    need("meson", "ninja", "systemd-analyze")
    base = workdir / "units-install"
    units = base / "units"
    run(["meson", "setup", str(base / "build"), str(clone), f"--prefix={base / 'usr'}",
         f"-Dsystemdsystemunitdir={units}", f"-Dtmpfilesdir={base / 'tmpfiles.d'}",
         f"-Dsystemdpresetdir={base / 'system-preset'}",
         f"-Denvironment_file={base / 'etc' / 'default' / 'kube2iam'}"])
    run(["ninja", "-C", str(base / "build")])
    run(["meson", "install", "-C", str(base / "build"), "--no-rebuild"])
    (units / "kubelet.service").write_text(
        "[Unit]\nDescription=stand-in kubelet\n\n[Service]\nExecStart=/bin/true\n\n"
        "[Install]\nWantedBy=multi-user.target\n")
    return units

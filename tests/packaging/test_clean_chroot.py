"""The .deb builds in a fresh Debian chroot that holds only build-essential and the Build-Depends
(so they are complete), on Debian 12 and 13, and each suite's own lintian finds nothing in it.
Root; the chroots are cached tarballs (build-chroot.sh)."""
import re

import pytest

from chroot_helpers import chroot, libc_at_least, need_root_and_tools, nspawn, remove
from pkg_helpers import run

# Where debhelper puts the units: systemd.pc's systemdsystemunitdir of each suite.
UNIT_DIR = {"bookworm": "lib/systemd/system", "trixie": "usr/lib/systemd/system"}


@pytest.fixture(scope="module", params=sorted(UNIT_DIR))
def built(request, workdir, clone):
    """{'suite', 'root', 'out', 'log'}: the chroot after `dpkg-buildpackage -b`; out holds the
    results, log the build's output."""
    need_root_and_tools()
    suite = request.param
    root = chroot(workdir, suite, "build", clone / "debian" / "control")
    try:
        run(["git", "clone", "-q", str(clone), str(root / "build" / "kube2iam")])
        p = nspawn(root, "dpkg-buildpackage", "-us", "-uc", "-b", chdir="/build/kube2iam",
                   check=False)
        print(p.stdout[-3000:])
        assert p.returncode == 0, f"dpkg-buildpackage on {suite} failed:\n{p.stdout[-6000:]}"
        log = re.sub(r"\x1b\[[0-9;]*m", "", p.stdout)  # dpkg and meson colour their output
        yield {"suite": suite, "root": root, "out": root / "build", "log": log}
    finally:
        remove(root)


def test_deb_builds_in_a_chroot_with_only_the_build_depends(built):
    # dpkg-buildpackage checks the Build-Depends first (dpkg-checkbuilddeps) and the chroot has
    # nothing else, so a missing one fails here, at meson setup or at the compiler.
    debs = list(built["out"].glob("kube2iam_*.deb"))
    assert len(debs) == 1, list(built["out"].iterdir())
    # the unit tests ran in the package build (dh_auto_test), the glibc ceiling among them
    assert re.search(r"glibc-ceiling\s+OK", built["log"]), built["log"][-3000:]


def test_deb_installs_units_where_the_suite_keeps_them(built):
    deb = next(built["out"].glob("kube2iam_*.deb"))
    files = run(["dpkg-deb", "-c", str(deb)]).stdout
    assert f"./{UNIT_DIR[built['suite']]}/kube2iam.service" in files


# Debian 12 only: glibc 2.38's headers redirect strtoul/sscanf to __isoc23_* under _GNU_SOURCE, so
# a build on Debian 13 needs its own glibc whatever the code does.
@pytest.mark.parametrize("built", ["bookworm"], indirect=True)
def test_deb_built_on_debian_12_asks_for_glibc_2_34_at_most(built):
    deb = next(built["out"].glob("kube2iam_*.deb"))
    assert libc_at_least(deb) <= [2, 34]


def test_deb_built_on_the_suite_is_lintian_clean_with_its_lintian(built, workdir):
    root = chroot(workdir, built["suite"], "lintian")
    try:
        check = root / "check"
        check.mkdir()
        for f in built["out"].glob("kube2iam*"):  # the -dbgsym package too, named in .changes
            if f.is_file():
                (check / f.name).write_bytes(f.read_bytes())
        changes = next(check.glob("kube2iam_*.changes")).name
        p = nspawn(root, "lintian", "--fail-on", "error,warning", "--display-info",
                   f"/check/{changes}", check=False)
        print(p.stdout)
        bad = [l for l in p.stdout.splitlines() if re.match(r"^[EW]: ", l)]
        assert p.returncode == 0 and not bad, p.stdout
    finally:
        remove(root)

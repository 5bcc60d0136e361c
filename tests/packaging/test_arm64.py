"""arm64 (Graviton): the .deb cross-built with Debian's toolchain (dpkg-buildpackage -aarm64
-Pcross,nocheck, the -dev packages :arm64 through multiarch), and the unit tests built with
cross/aarch64-linux-gnu.ini and run under qemu-user. Root; the chroot is cached
(build-chroot.sh)."""
import json
import re

import pytest

from chroot_helpers import chroot, libc_at_least, need_root_and_tools, nspawn, remove
from pkg_helpers import run


@pytest.fixture(scope="module")
def arm64(workdir, clone):
    """A bookworm chroot with the cross toolchain and a clean clone in /build/kube2iam."""
    need_root_and_tools()
    root = chroot(workdir, "bookworm", "arm64", clone / "debian" / "control")
    try:
        run(["git", "clone", "-q", str(clone), str(root / "build" / "kube2iam")])
        yield root
    finally:
        remove(root)


def elf_machine(path):
    return re.search(r"Machine:\s*(.*)", run(["readelf", "-h", str(path)]).stdout).group(1).strip()


def test_arm64_deb_cross_builds_for_aarch64_with_glibc_2_34(arm64, workdir):
    p = nspawn(arm64, "dpkg-buildpackage", "-aarm64", "-Pcross,nocheck", "-us", "-uc", "-b",
               chdir="/build/kube2iam", check=False)
    assert p.returncode == 0, p.stdout[-6000:]
    debs = list((arm64 / "build").glob("kube2iam_*_arm64.deb"))
    assert len(debs) == 1, list((arm64 / "build").iterdir())
    out = workdir / "arm64-deb"
    run(["dpkg-deb", "-x", str(debs[0]), str(out)])
    for binary in ("usr/bin/kube2iam", "usr/sbin/kube2iam-nft"):
        assert elf_machine(out / binary) == "AArch64"
    assert libc_at_least(debs[0]) <= [2, 34]


def test_arm64_unit_tests_pass_under_qemu(arm64):
    p = nspawn(arm64, "sh", "-c",
               "meson setup /build/arm64 --cross-file cross/aarch64-linux-gnu.ini >/dev/null && "
               "ninja -C /build/arm64 >/dev/null && "
               "meson introspect --tests /build/arm64 >/build/arm64-tests.json && "
               "meson test -C /build/arm64 --suite unit --print-errorlogs",
               chdir="/build/kube2iam", check=False)
    print(p.stdout[-4000:])
    assert p.returncode == 0, p.stdout[-6000:]
    # every unit test ran (none skipped) and they are arm64 programs, run by qemu-aarch64
    tests = json.loads((arm64 / "build" / "arm64-tests.json").read_text())
    unit = [t["name"] for t in tests if any(s.split(":")[-1] == "unit" for s in t["suite"])]
    ok = int(re.search(r"^Ok:\s+(\d+)", p.stdout, re.M).group(1))
    assert ok == len(unit) and "test-kube-exec" in unit, p.stdout[-3000:]
    assert elf_machine(arm64 / "build" / "arm64" / "tests" / "test-kube-exec") == "AArch64"
    log = (arm64 / "build" / "arm64" / "meson-logs" / "testlog.txt").read_text()
    assert "qemu-aarch64" in log

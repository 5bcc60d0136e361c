"""The .deb and the .rpm: built from a clean clone, lintian-clean, carrying the same files, and their
systemd units verified and sandboxed (issue 7)."""
import re
import subprocess
from pathlib import Path

import pytest

from pkg_helpers import meson_version, need, run

EXPOSURE_MAX = 2.0
UNITS = ["kube2iam.service", "kube2iam.socket", "kube2iam-metrics.socket"]


def payload(root):
    """Files (not directories) under an extracted package root, as '/path' strings."""
    return {"/" + str(p.relative_to(root)) for p in Path(root).rglob("*")
            if p.is_file() or p.is_symlink()}


def normalise(path):
    """Maps one distribution's location of a file to a neutral name, so both packages compare."""
    # dh_compress gzips documentation; Fedora's brp scripts do it for man pages only.
    if path.startswith("/usr/share/doc/") and path.endswith(".gz"):
        path = path[:-3]
    rules = [
        (r"^/(usr/)?lib/systemd/system/", "UNITDIR/"),
        (r"^/(usr/)?lib/systemd/system-preset/", "PRESETDIR/"),
        (r"^/etc/(default|sysconfig)/kube2iam$", "ENVFILE"),
        (r"^/usr/share/man/(man\d)/(.*?)(\.gz)?$", r"MAN/\1/\2"),
        # The license: debian/copyright in the .deb, %license in the .rpm.
        (r"^/usr/share/doc/kube2iam/copyright$", "LICENSE"),
        (r"^/usr/share/licenses/kube2iam(-[\d.]+)?/LICENSE$", "LICENSE"),
    ]
    for pat, rep in rules:
        if re.match(pat, path):
            return re.sub(pat, rep, path)
    return path


def distro_only(path):
    """Files one packaging system adds by itself and the other has no counterpart for."""
    return (path == "/usr/share/doc/kube2iam/changelog.gz"        # dh_installchangelogs
            or path == "/usr/share/lintian/overrides/kube2iam"    # dh_lintian
            or path.startswith("/usr/lib/.build-id/"))            # rpm's debuginfo links


def test_deb_builds_from_clean_clone_with_meson_version(deb, clone):
    assert deb["deb"].name.startswith(f"kube2iam_{meson_version(clone)}_")


def test_debian_changelog_version_is_meson_project_version(clone):
    # The version lives in project(); debian/changelog must not drift from it.
    first = (clone / "debian" / "changelog").read_text().splitlines()[0]
    m = re.match(r"kube2iam \(([^)]+)\)", first)
    assert m and m.group(1).split("-")[0] == meson_version(clone)


def test_lintian_reports_no_errors_or_warnings(deb):
    need("lintian")
    p = run(["lintian", "--fail-on", "error,warning", "--display-info", str(deb["changes"])],
            check=False)
    print(p.stdout)
    bad = [l for l in p.stdout.splitlines() if re.match(r"^[EW]: ", l)]
    assert p.returncode == 0 and not bad, p.stdout


def test_deb_kubelet_dropin_checks_with_the_packaged_helper_and_settings(deb):
    text = (deb["root"] / "lib/systemd/system/kubelet.service.d/10-kube2iam.conf").read_text()
    assert "\nExecStartPre=/usr/sbin/kube2iam-nft check\n" in text
    assert "\nEnvironmentFile=-/etc/default/kube2iam\n" in text


def test_deb_daemon_has_no_test_fault_points(deb):
    """-Dtest_faults=true is for the test suites' builds only: the packaged daemon cannot be made
    to abort by a crafted snapshot."""
    binary = (deb["root"] / "usr/bin/kube2iam").read_bytes()
    assert b"kube2iam" in binary
    assert b"test-fault: crash at restore" not in binary
    assert b"Test fault point" not in binary


def test_deb_environment_file_is_a_conffile_and_named_by_the_unit(deb):
    conffiles = (deb["control"] / "conffiles").read_text().split()
    assert "/etc/default/kube2iam" in conffiles
    unit = (deb["root"] / "lib/systemd/system/kube2iam.service").read_text()
    assert "EnvironmentFile=-/etc/default/kube2iam" in unit


def test_deb_enables_socket_and_service_and_keeps_socket_on_upgrade(deb):
    postinst = (deb["control"] / "postinst").read_text()
    assert "deb-systemd-helper enable 'kube2iam.service'" in postinst
    assert "deb-systemd-helper enable 'kube2iam.socket'" in postinst
    # The socket is only started, never restarted (nor stopped by prerm on upgrade): systemd keeps
    # the port open across upgrades. debhelper names Also= units with the service's, so any
    # restart or variable action that names the socket would restart it.
    assert "deb-systemd-invoke start 'kube2iam.service' 'kube2iam.socket'" in postinst
    for line in postinst.splitlines():
        if "deb-systemd-invoke" in line and "kube2iam.socket" in line:
            assert re.search(r"deb-systemd-invoke start ", line), line
    assert re.search(r"^        deb-systemd-invoke restart kube2iam.service ", postinst, re.M)
    prerm = (deb["control"] / "prerm").read_text()
    assert "stop 'kube2iam.socket'" in prerm and '"$1" = remove' in prerm


REMOVAL_NOTICE = "the nftables redirect of 169.254.169.254 stays after removal"


def test_deb_removal_keeps_the_redirect_and_says_so_purge_deletes_it(deb):
    prerm = (deb["control"] / "prerm").read_text()
    # fail closed: no maintainer script runs the helper (nor parses KUBE2IAM_ARGS) on removal
    assert "/usr/sbin/kube2iam-nft" not in prerm and not re.search(r"^\s*kube2iam-nft", prerm, re.M)
    assert "/etc/default/kube2iam" not in prerm
    guard = prerm.index('if [ "$1" = remove ]; then')
    assert REMOVAL_NOTICE in prerm[guard:]
    postrm = (deb["control"] / "postrm").read_text()
    purge = postrm.index('if [ "$1" = purge ]; then\n        if command -v nft')
    assert 'nft delete table "$family" kube2iam' in postrm[purge:]


def test_deb_upgrade_never_stops_the_opt_in_metrics_socket(deb):
    prerm = (deb["control"] / "prerm").read_text()
    postinst = (deb["control"] / "postinst").read_text()
    # stopped only when the package goes away, and never enabled or started by the package (an
    # enabled one is re-enabled if it was: deb-systemd-helper's was-enabled)
    blocks = [b for b in re.findall(r"^if \[ .*?^fi$", prerm, re.S | re.M) if "kube2iam-metrics.socket" in b]
    assert blocks, prerm
    for block in blocks:
        assert '"$1" = remove' in block and "upgrade" not in block, block
    assert "deb-systemd-invoke start 'kube2iam-metrics.socket'" not in postinst
    assert not re.search(r"^\tdeb-systemd-helper enable 'kube2iam-metrics.socket'", postinst, re.M)


def test_rpm_builds_with_standard_macros_and_config_noreplace(rpm):
    spec = rpm["spec"].read_text()
    for macro in ("%meson ", "%meson_build", "%meson_install", "%systemd_post ", "%systemd_preun ",
                  "%systemd_postun_with_restart ", "%{_unitdir}",
                  "%config(noreplace) %{_sysconfdir}/sysconfig/kube2iam"):
        assert macro in spec
    conf = run(["rpm", "-qpc", "--dbpath", str(rpm["db"]), str(rpm["rpm"])]).stdout.split()
    assert conf == ["/etc/sysconfig/kube2iam"]
    unit = (rpm["root"] / "usr/lib/systemd/system/kube2iam.service").read_text()
    assert "EnvironmentFile=-/etc/sysconfig/kube2iam" in unit


def test_rpm_version_is_meson_project_version(rpm, clone):
    v = run(["rpm", "-qp", "--dbpath", str(rpm["db"]), "--qf", "%{VERSION}", str(rpm["rpm"])]).stdout
    assert v == meson_version(clone)


def test_rpm_spec_version_and_changelog_are_meson_project_version(clone):
    # The spec is committed (rpmbuild -ta needs it at the top of a tag tarball): it must not
    # drift from project().
    spec = (clone / "kube2iam.spec").read_text()
    version = re.search(r"^Version:\s*(\S+)$", spec, re.M).group(1)
    assert version == meson_version(clone)
    entry = spec.split("%changelog\n", 1)[1].splitlines()[0]
    assert entry.endswith(f" - {version}-1"), entry


def test_rpm_spec_names_upstream_url_and_full_source_url(clone):
    spec = (clone / "kube2iam.spec").read_text()
    url = re.search(r"^URL:\s*(\S+)$", spec, re.M).group(1)
    source = re.search(r"^Source0:\s*(\S+)$", spec, re.M).group(1)
    assert url.startswith("https://")
    assert source.startswith(("%{url}/", url + "/")) and source.endswith("/%{name}-%{version}.tar.gz")


def test_rpm_erase_keeps_the_redirect_and_says_so(rpm):
    s = run(["rpm", "-qp", "--dbpath", str(rpm["db"]), "--scripts", str(rpm["rpm"])]).stdout
    preun = s.split("preuninstall scriptlet")[1].split("postuninstall scriptlet")[0]
    assert "/usr/sbin/kube2iam-nft" not in preun and "sysconfig" not in preun
    assert REMOVAL_NOTICE in preun[preun.index("if [ $1 -eq 0 ]; then\n        echo"):]


def test_both_packages_ship_the_same_preset_enabling_what_the_deb_enables(deb, rpm):
    preset = [p for p in payload(deb["root"]) if p.endswith("/system-preset/90-kube2iam.preset")]
    assert len(preset) == 1, preset
    text = (deb["root"] / preset[0].lstrip("/")).read_text()
    assert (rpm["root"] / "usr/lib/systemd/system-preset/90-kube2iam.preset").read_text() == text
    rules = dict(reversed(l.split()) for l in text.splitlines() if l and not l.startswith("#"))
    postinst = (deb["control"] / "postinst").read_text()
    for unit in UNITS:
        # dh_installsystemd's unconditional enable (the metrics socket's is only "if it was enabled")
        enabled = re.search(rf"^\t\tdeb-systemd-helper enable '{re.escape(unit)}'", postinst, re.M)
        assert bool(enabled) == (rules[unit] == "enable"), unit


def test_units_document_themselves_with_man_pages_not_compressed_files(deb):
    for unit in UNITS:
        text = (deb["root"] / "lib/systemd/system" / unit).read_text()
        docs = " ".join(l.split("=", 1)[1] for l in text.splitlines() if l.startswith("Documentation="))
        assert docs, unit
        for uri in docs.split():
            assert uri.startswith("man:"), (unit, uri)
            page = re.fullmatch(r"man:([\w-]+)\((\d)\)", uri)
            assert page and (deb["root"] / f"usr/share/man/man{page[2]}/{page[1]}.{page[2]}.gz").exists(), uri


def test_enabling_the_service_enables_its_socket(installed_units):
    unit = (installed_units / "kube2iam.service").read_text()
    install = unit.split("[Install]", 1)[1]
    assert re.search(r"^Also=kube2iam\.socket$", install, re.M)


def test_configuration_errors_are_not_restarted_and_no_start_limit_closes_the_socket(installed_units):
    unit = (installed_units / "kube2iam.service").read_text()
    assert re.search(r"^RestartPreventExitStatus=2$", unit, re.M)
    assert re.search(r"^StartLimitIntervalSec=0$", unit, re.M)
    assert not re.search(r"^StartLimitBurst=", unit, re.M)


def test_deb_and_rpm_carry_the_same_files(deb, rpm):
    d = {normalise(p) for p in payload(deb["root"]) if not distro_only(p)}
    r = {normalise(p) for p in payload(rpm["root"]) if not distro_only(p)}
    assert d == r, f"only in .deb: {sorted(d - r)}; only in .rpm: {sorted(r - d)}"
    for must in ("/usr/bin/kube2iam", "/usr/sbin/kube2iam-nft", "UNITDIR/kube2iam.service",
                 "UNITDIR/kube2iam.socket", "UNITDIR/kubelet.service.d/10-kube2iam.conf",
                 "ENVFILE", "LICENSE", "MAN/man8/kube2iam.8", "MAN/man8/kube2iam-nft.8",
                 "UNITDIR/snap.kubelet-eks.daemon.service.d/10-kube2iam.conf",
                 "/usr/lib/systemd/catalog/kube2iam.catalog",
                 "/usr/share/bash-completion/completions/kube2iam",
                 "/usr/share/bash-completion/completions/kube2iam-nft",
                 "/usr/share/doc/kube2iam/docs/README.md", "/usr/share/doc/kube2iam/docs/design.md",
                 "/usr/share/doc/kube2iam/docs/compatibility.md", "/usr/share/doc/kube2iam/docs/testing.md"):
        assert must in d


def test_units_verify_clean(installed_units):
    p = run(["systemd-analyze", "verify", "--man=no"] + UNITS + ["kubelet.service"],
            cwd=installed_units, check=False)
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout


def test_kubelet_dropin_wants_orders_and_checks_the_redirect_without_requires(installed_units):
    text = (installed_units / "kubelet.service.d" / "10-kube2iam.conf").read_text()
    lines = {l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#")}
    assert {"[Unit]", "Wants=kube2iam.service", "After=kube2iam.service", "[Service]"} <= lines, lines
    assert any(re.fullmatch(r"ExecStartPre=/\S*/sbin/kube2iam-nft check", l) for l in lines), lines
    assert any(re.fullmatch(r"EnvironmentFile=-/\S*/kube2iam", l) for l in lines), lines
    # Requires= would restart kubelet on every kube2iam restart or crash
    assert not any(l.startswith(("Requires=", "BindsTo=", "PartOf=")) for l in lines), lines


def test_service_keeps_its_runtime_directory_across_restarts(installed_units):
    unit = (installed_units / "kube2iam.service").read_text()
    for key in ("RuntimeDirectory=kube2iam", "RuntimeDirectoryPreserve=yes"):
        assert re.search(rf"^{key}$", unit, re.M), key


def test_service_exposure_at_most_2(installed_units):
    p = run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
             str(installed_units / "kube2iam.service")], check=False)
    m = re.search(r"Overall exposure level for kube2iam\.service:\s*([\d.]+)", p.stdout)
    assert m, p.stdout
    print(f"exposure {m.group(1)}")
    assert float(m.group(1)) <= EXPOSURE_MAX, p.stdout


def test_service_runs_helper_privileged_and_daemon_without_capabilities(installed_units):
    unit = (installed_units / "kube2iam.service").read_text()
    assert re.search(r"^ExecStartPre=\+\S*/kube2iam-nft install$", unit, re.M)
    assert re.search(r"^ExecStart=\S*/kube2iam$", unit, re.M)
    assert re.search(r"^CapabilityBoundingSet=$", unit, re.M)
    for key in ("Type=notify", "Restart=always", "WatchdogSec=", "Before=kubelet.service",
                "After=kube2iam.socket network-online.target", "Wants=network-online.target",
                "WantedBy=multi-user.target", "NoNewPrivileges=yes", "ProtectSystem=strict",
                "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service"):
        assert key in unit


def test_source_tarball_carries_the_sigv4_vectors_the_package_check_runs(rpm):
    """rpmbuild's %check and dh_auto_test run the unit suite, whose SigV4 test fails (never skips)
    without tests/vectors/sigv4; the tarball `rpmbuild -ta` gets must carry them and their notices."""
    names = run(["tar", "-tzf", str(rpm["tarball"])]).stdout.split()
    vectors = [n.split("/tests/vectors/sigv4/", 1)[1] for n in names if "/tests/vectors/sigv4/" in n]
    assert {"LICENSE", "NOTICE", "README.md"} <= set(vectors)
    cases = {v.split("/")[0] for v in vectors if v.endswith("/header-signature.txt")}
    assert len(cases) >= 38, cases

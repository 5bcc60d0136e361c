"""Fixtures of the nspawn suite: the package, the cached rootfs, and one booted node per module."""
import os
import shutil

import pytest

from nspawn_helpers import Node, build_deb, rootfs_tarball

TOOLS = ["systemd-nspawn", "debootstrap", "nsenter", "ip", "nft", "dpkg-deb", "tar"]


def pytest_collection_modifyitems(config, items):
    reason = None
    if os.geteuid() != 0:
        reason = "needs root (network namespaces, systemd-nspawn)"
    else:
        missing = [t for t in TOOLS + (["dpkg-buildpackage"] if not os.environ.get("KUBE2IAM_DEB")
                                      else []) if shutil.which(t) is None]
        if missing:
            reason = f"missing tools: {' '.join(missing)} (scripts/install-deps.sh installs them)"
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("kube2iam-nspawn")


@pytest.fixture(scope="session")
def deb(workdir):
    return build_deb(workdir)


@pytest.fixture(scope="session")
def tarball(deb):
    return rootfs_tarball(deb)


@pytest.fixture(scope="module")
def node(workdir, tarball, deb):
    n = Node(workdir, tarball, deb)
    try:
        n.setup_network()
        n.prepare_rootfs()
        n.boot()
        yield n
    finally:
        n.close()

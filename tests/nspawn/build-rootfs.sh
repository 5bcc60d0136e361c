#!/bin/sh
# Builds (once) the Debian bookworm rootfs the nspawn suite boots, as a tarball in a cache dir.
#   build-rootfs.sh CACHE_DIR [EXTRA_PACKAGE...]   prints the tarball's path
# The tarball's name carries a hash of the package list, so a new runtime dependency of the
# .deb (taken from its Depends: by the test) builds a new rootfs instead of failing dpkg -i;
# the container has no network, so everything the package needs must be in the rootfs.
# Concurrent runs serialise on a lock; debootstrap's .debs are kept in CACHE_DIR/debs.
set -eu

cache=${1:?usage: build-rootfs.sh CACHE_DIR [EXTRA_PACKAGE...]}
shift
base="systemd,systemd-sysv,dbus,iproute2,curl,nftables"
pkgs=$(printf '%s\n' $(echo "$base" | tr ',' ' ') "$@" | sort -u | paste -sd, -)
hash=$(printf '%s' "bookworm:$pkgs" | sha256sum | cut -c1-12)
tarball="$cache/rootfs-bookworm-$hash.tar"

mkdir -p "$cache/debs"
exec 9>"$cache/lock"
flock 9
if [ -s "$tarball" ]; then
        echo "$tarball"
        exit 0
fi

mirror=$("$(dirname "$0")/../tools/debian-mirror.sh")

tmp=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$pkgs" \
        bookworm "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
        tail -n 20 "$tmp/debootstrap.log" >&2
        exit 1
}
# A machine-id makes journald keep a persistent journal id; the hostname names the node.
echo kube2iam-node >"$tmp/root/etc/hostname"
: >"$tmp/root/etc/machine-id"
rm -rf "$tmp/root/var/cache/apt/archives"/*.deb
tar -C "$tmp/root" -cf "$tmp/rootfs.tar" .
mv "$tmp/rootfs.tar" "$tarball"
echo "$tarball"

#!/bin/sh
# Builds (once) a Debian chroot for the packaging suite, as a tarball in a cache dir.
#   build-chroot.sh CACHE_DIR SUITE KIND [CONTROL]      prints the tarball's path
# KIND is one of
#   build    debootstrap's buildd variant (build-essential) plus exactly the Build-Depends of
#            CONTROL (a debian/control), installed by `apt-get build-dep`: a package that builds
#            here declares every build dependency it has;
#   arm64    the same for a cross build to arm64: Debian's cross toolchain, the Build-Depends of
#            CONTROL for arm64 (multiarch), and qemu-user to run the arm64 unit tests;
#   lintian  minbase plus lintian, to check a package with the suite's own lintian.
# The tarball's name carries a hash of what went into it (suite, kind, Build-Depends), so a
# change of Build-Depends builds a new chroot. Runs for one suite serialise on a lock (they share
# its .deb cache), kept in CACHE_DIR/debs-SUITE. Needs root, debootstrap and systemd-nspawn.
set -eu

cache=${1:?usage: build-chroot.sh CACHE_DIR SUITE KIND [CONTROL]}
suite=${2:?suite}
kind=${3:?kind}
control=${4:-}
case $kind in
build | arm64) [ -r "$control" ] || { echo "build-chroot.sh: $kind needs a debian/control" >&2; exit 2; } ;;
lintian) ;;
*) echo "build-chroot.sh: unknown kind $kind" >&2; exit 2 ;;
esac
bdeps=
[ "$kind" != lintian ] && bdeps=$(sed -n '/^Build-Depends:/,/^[^ ]/p' "$control" | tr -s ' \n' ' ')
hash=$(printf '%s' "$suite:$kind:$bdeps" | sha256sum | cut -c1-12)
tarball="$cache/chroot-$suite-$kind-$hash.tar"

mkdir -p "$cache/debs-$suite"
exec 9>"$cache/lock-chroot-$suite"
flock 9
if [ -s "$tarball" ]; then
        echo "$tarball"
        exit 0
fi

mirror=$("$(dirname "$0")/../tools/debian-mirror.sh")

tmp=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf --one-file-system "$tmp"' EXIT
root=$tmp/root
variant=buildd
[ "$kind" = lintian ] && variant=minbase
debootstrap --variant=$variant --cache-dir="$cache/debs-$suite" \
        "$suite" "$root" "$mirror" >"$tmp/log" 2>&1 || {
        tail -n 20 "$tmp/log" >&2
        exit 1
}

# apt inside the chroot reaches the same mirror through the host's network.
in_root() {
        systemd-nspawn -q --register=no --keep-unit -M "k2i-chroot-$$" -D "$root" \
                --bind="$cache/debs-$suite:/var/cache/apt/archives" \
                --setenv=DEBIAN_FRONTEND=noninteractive "$@" >>"$tmp/log" 2>&1 || {
                tail -n 30 "$tmp/log" >&2
                exit 1
        }
}
apt_get() { in_root apt-get -y --no-install-recommends "$@"; }
if [ "$kind" = lintian ]; then
        # apt orders lintian's many Perl dependencies; debootstrap --include failed to on trixie
        in_root apt-get update
        apt_get install lintian
else
        mkdir -p "$root/build-dep/debian"
        cp "$control" "$root/build-dep/debian/control"
        printf 'kube2iam (0-0) unstable; urgency=medium\n\n  * build-dep\n\n -- x <x@example.org>  Thu, 01 Jan 1970 00:00:00 +0000\n' \
                >"$root/build-dep/debian/changelog"
        if [ "$kind" = arm64 ]; then
                in_root dpkg --add-architecture arm64
                in_root apt-get update
                apt_get install crossbuild-essential-arm64 qemu-user
                apt_get build-dep -a arm64 -P cross,nocheck /build-dep
        else
                in_root apt-get update
                apt_get build-dep /build-dep
        fi
        rm -rf "$root/build-dep"
fi
rm -rf "$root/var/lib/apt/lists"/*_Packages "$root/var/cache/apt/archives"/*.deb
tar -C "$root" -cf "$tmp/chroot.tar" .
mv "$tmp/chroot.tar" "$tarball"
echo "$tarball"

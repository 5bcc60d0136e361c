#!/bin/sh
# Installs every Debian package kube2iam needs to build, test and run.
# Idempotent and quiet: packages already present are not touched.
set -eu

BUILD="meson ninja-build pkg-config gcc clang libclang-rt-14-dev
libsystemd-dev libcurl4-openssl-dev libcjson-dev libssl-dev libmnl-dev libnftnl-dev
libmicrohttpd-dev libyaml-dev libxml2-dev libpcre2-dev"
TEST="python3 python3-pytest python3-botocore python3-prometheus-client awscli curl openssl nftables iproute2
systemd systemd-container debootstrap clang-format wrk nginx-light valgrind
dpkg-dev debhelper rpm rpm2cpio lintian shellcheck python3-yaml groff-base"

missing=""
for p in $BUILD $TEST; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# The Packer template's test parses HCL with an npm package (tests/packaging/test_contrib.py
# installs it into the test cache): node and npm, from Debian unless the machine has them already.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages:$missing (run as root to install them)" >&2
        exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null

#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Prints the Debian mirror this host's apt already uses (deb822 sources or the one-line format),
# for debootstrap; deb.debian.org when there is none.
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\{0,1\}$/\1/p' \
                /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' \
                /etc/apt/sources.list 2>/dev/null || true)
echo "${mirror:-http://deb.debian.org/debian}"

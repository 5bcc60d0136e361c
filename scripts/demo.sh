#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The README's first command: installs what is needed, builds, and shows a pod getting its IAM role
# through a real AWS client, against local stand-ins for Kubernetes, STS and the instance metadata
# service (scripts/demo.py says how). Cleans up after itself.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then ./scripts/install-deps.sh; else ./scripts/install-deps.sh || true; fi
if [ ! -f build/build.ninja ]; then meson setup build >/dev/null; fi
ninja -C build >/dev/null
exec /usr/bin/python3 scripts/demo.py

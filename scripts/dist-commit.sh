#!/bin/sh
# meson dist script: records the commit in the tarball, so a build without git still reports it
# (kube2iam_info{commit_hash}, --version).
set -eu
git -C "$MESON_SOURCE_ROOT" rev-parse --short=12 HEAD >"$MESON_DIST_ROOT/COMMIT"

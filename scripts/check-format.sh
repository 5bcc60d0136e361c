#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Checks the C files changed by the last commit (or given as arguments) against .clang-format.
set -eu
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
        files=("$@")
else
        mapfile -t files < <(git diff --name-only --diff-filter=AM HEAD~1 -- '*.c' '*.h' 2>/dev/null || git ls-files '*.c' '*.h')
fi
[ ${#files[@]} -eq 0 ] && { echo "no C files changed"; exit 0; }
clang-format --dry-run -Werror "${files[@]}"
echo "format ok: ${#files[@]} file(s)"

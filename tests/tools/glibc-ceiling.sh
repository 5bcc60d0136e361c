#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Checks that binaries need no glibc symbol version newer than a ceiling (TAP, one line each).
#   glibc-ceiling.sh OBJDUMP CEILING BINARY...
# The highest GLIBC_x.y in a binary's dynamic symbol table is the oldest glibc it loads on.
# Not counted: __isoc23_* (strtoul, sscanf, ...). glibc 2.38's headers redirect those functions to
# their C23 variants under _GNU_SOURCE, so a build against 2.38 or newer (Debian 13) needs 2.38
# whatever the code does; built against 2.34 the same code calls the plain functions. The
# ceiling is about what the code asks of glibc.
set -u
objdump=$1
ceiling=$2
shift 2
echo "1..$#"
n=0
for bin in "$@"; do
        n=$((n + 1))
        name=$(basename "$bin")
        if ! syms=$("$objdump" -T "$bin" 2>&1); then
                echo "not ok $n - $name: $objdump -T failed: $syms"
                continue
        fi
        syms=$(printf '%s\n' "$syms" | grep -av '__isoc23_')
        highest=$(printf '%s\n' "$syms" | grep -ao 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n1)
        if [ -z "$highest" ]; then
                echo "not ok $n - $name: no GLIBC_ symbol version found (not a glibc binary?)"
        elif [ "$(printf '%s\n%s\n' "$highest" "$ceiling" | sort -V | tail -n1)" = "$ceiling" ]; then
                echo "ok $n - $name needs glibc $highest, at most $ceiling"
        else
                echo "not ok $n - $name needs glibc $highest, newer than $ceiling:"
                printf '%s\n' "$syms" | grep -a "GLIBC_$highest" | sed 's/^/# /'
        fi
done

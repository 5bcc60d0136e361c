#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs every test of the project on this machine: installs what is needed, builds with gcc
# (warnings are errors), runs the C unit tests and the fuzz regression runners, the pytest
# suites (integration on loopback; netns, packaging and nspawn as root), checks that clang
# builds it, runs the unit and integration suites again under AddressSanitizer+UBSan, and
# checks the format of changed C files. The last line is "N passed, N failed".
#
# Environment: K2I_SKIP_ASAN=1 skips the sanitizer pass (for quick local runs).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=/usr/bin/python3
OUT=$ROOT/build-test
mkdir -p "$OUT"
passed=0
failed=0
failures=()

note() { printf '\n=== %s\n' "$*"; }
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAILED: $1"; }

# Counts TAP lines of every program meson ran, from its JSON log.
count_meson() {
        local log=$1 label=$2
        if [ ! -f "$log" ]; then
                fail "$label: no test log"
                return
        fi
        read -r p f < <($PY - "$log" <<'PYEOF'
import json, re, sys
p = f = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdout") or ""
    oks = len(re.findall(r"^ok \d+", out, re.M))
    nots = len(re.findall(r"^not ok \d+", out, re.M))
    if t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
        p += max(oks, 1) if t.get("result") != "SKIP" else 0
    else:
        p += oks
        f += max(nots, 1)
        print("  failed:", t.get("name"), file=sys.stderr)
print(p, f)
PYEOF
)
        passed=$((passed + p))
        failed=$((failed + f))
        [ "$f" -gt 0 ] && failures+=("$label ($f)")
        echo "$label: $p passed, $f failed"
}

# Counts a pytest run from its JUnit XML.
count_pytest() {
        local xml=$1 label=$2
        if [ ! -f "$xml" ]; then
                fail "$label: pytest did not run"
                return
        fi
        read -r p f < <($PY - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
p = f = 0
for s in suites:
    t, fl, er, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    f += fl + er
    p += t - fl - er - sk
print(p, f)
PYEOF
)
        passed=$((passed + p))
        failed=$((failed + f))
        [ "$f" -gt 0 ] && failures+=("$label ($f)")
        echo "$label: $p passed, $f failed"
}

note "Installing dependencies"
if ./scripts/install-deps.sh; then pass; else fail "install-deps"; fi

note "Building with gcc (warnings are errors; the test fault points compiled in, packages never have them)"
rm -rf build
if CC=gcc meson setup build -Dwerror=true -Dtest_faults=true >"$OUT/setup-gcc.log" 2>&1 && ninja -C build >"$OUT/build-gcc.log" 2>&1; then
        pass
else
        cat "$OUT/setup-gcc.log" "$OUT/build-gcc.log" | tail -40
        fail "gcc build"
        echo "$passed passed, $failed failed"
        exit 1
fi

note "C unit tests and fuzz regression runners (gcc)"
meson test -C build --suite unit --suite fuzz --print-errorlogs >"$OUT/unit-gcc.log" 2>&1
count_meson build/meson-logs/testlog.json "unit (gcc)"

pytest_dirs=(tests/integration)
if [ "$(id -u)" -eq 0 ]; then
        for d in tests/netns tests/packaging tests/nspawn; do
                [ -d "$d" ] && pytest_dirs+=("$d")
        done
else
        echo "not root: the netns, packaging and nspawn suites need root and are not run"
fi
# one pytest run per suite: each suite may have its own conftest.py
for d in "${pytest_dirs[@]}"; do
        name=$(basename "$d")
        note "pytest: $d"
        KUBE2IAM_BUILD_DIR=$ROOT/build $PY -m pytest -q -p no:cacheprovider --junitxml="$OUT/pytest-$name.xml" \
                "$d" 2>&1 | tee "$OUT/pytest-$name.log" | tail -15
        count_pytest "$OUT/pytest-$name.xml" "pytest $name"
done

# The clang build also takes the kubeconfig CA path of libcurl < 7.77 (RHEL 9's 7.76), which
# Debian's libcurl would never take: the Kubernetes suite proves it against the TLS fake.
note "Building with clang (warnings are errors; the libcurl < 7.77 CA path)"
rm -rf build-clang
if CC=clang meson setup build-clang -Dwerror=true -Dcurl_ca_callback=true >"$OUT/setup-clang.log" 2>&1 &&
                ninja -C build-clang >"$OUT/build-clang.log" 2>&1; then
        pass
        KUBE2IAM_BUILD_DIR=$ROOT/build-clang $PY -m pytest -q -p no:cacheprovider \
                --junitxml="$OUT/pytest-clang-kube.xml" tests/integration/test_kube_watch.py 2>&1 |
                tee "$OUT/pytest-clang-kube.log" | tail -5
        count_pytest "$OUT/pytest-clang-kube.xml" "pytest kube (clang, CA through the TLS context)"
else
        tail -40 "$OUT/build-clang.log"
        fail "clang build"
fi

if [ "${K2I_SKIP_ASAN:-0}" != 1 ]; then
        note "AddressSanitizer + UBSan: unit and integration suites"
        rm -rf build-asan
        if meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
                        -Dtest_faults=true >"$OUT/setup-asan.log" 2>&1 && ninja -C build-asan >"$OUT/build-asan.log" 2>&1; then
                pass
                export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
                export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=66
                meson test -C build-asan --suite unit --suite fuzz --print-errorlogs >"$OUT/unit-asan.log" 2>&1
                count_meson build-asan/meson-logs/testlog.json "unit (asan)"
                KUBE2IAM_BUILD_DIR=$ROOT/build-asan KUBE2IAM_SANITIZED=1 $PY -m pytest -q -p no:cacheprovider \
                        --junitxml="$OUT/pytest-asan.xml" tests/integration 2>&1 | tee "$OUT/pytest-asan.log" | tail -15
                count_pytest "$OUT/pytest-asan.xml" "pytest (asan)"
        else
                tail -40 "$OUT/build-asan.log"
                fail "asan build"
        fi
fi

note "Fuzzing: each target for ${K2I_FUZZ_SECONDS:-20} s under ASan+UBSan (libFuzzer, clang)"
rm -rf build-fuzz
if CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
                >"$OUT/setup-fuzz.log" 2>&1 && ninja -C build-fuzz >"$OUT/build-fuzz.log" 2>&1; then
        for t in build-fuzz/tests/fuzz/fuzz-*; do
                [ -f "$t" ] && [ -x "$t" ] || continue  # not the fuzz-*.p object directories
                name=$(basename "$t")
                work=$(mktemp -d)
                if "$t" -max_total_time="${K2I_FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -timeout=10 \
                                -artifact_prefix="$OUT/$name-" "$work" "tests/fuzz/corpus/$name" \
                                >"$OUT/$name.log" 2>&1; then
                        pass
                        echo "$name: $(grep -o 'Done [0-9]* runs' "$OUT/$name.log")"
                else
                        tail -30 "$OUT/$name.log"
                        fail "$name (reproducer under $OUT/$name-*)"
                fi
                rm -rf "$work"
        done
else
        tail -30 "$OUT/build-fuzz.log"
        fail "fuzz build"
fi

note "Format of changed C files (.clang-format)"
if ./scripts/check-format.sh >"$OUT/format.log" 2>&1; then pass; else cat "$OUT/format.log" | tail -20; fail "format"; fi

note "Summary"
for f in "${failures[@]}"; do echo "  failed: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

"""Helpers of the packaging suite (a module of its own: two suites' conftest.py cannot both be
imported as `conftest`)."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RPM_MACROS = Path(__file__).resolve().parent / "rpm-fallback.macros"


def run(cmd, cwd=None, env=None, check=True):
    """Runs cmd, returns the CompletedProcess; on failure shows the command's output."""
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout[-6000:]}")
    return p


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {' '.join(missing)} (scripts/install-deps.sh installs them)")


def meson_version(src):
    out = run(["meson", "introspect", "--projectinfo", str(src / "meson.build")]).stdout
    return json.loads(out)["version"]



# SPDX-License-Identifier: BSD-3-Clause
"""Fixtures for every pytest suite under tests/: the fakes of the outside world (tests/fakes), a
systemd notify socket, and the daemon as a child process (helpers in tests/pylib/k2i_testlib.py)."""

import os
import sys

import pytest

_TESTS = os.path.dirname(os.path.abspath(__file__))
for _d in ("pylib", "fakes"):
    if os.path.join(_TESTS, _d) not in sys.path:
        sys.path.insert(0, os.path.join(_TESTS, _d))

from k2i_testlib import Daemon, NotifySocket  # noqa: E402


@pytest.fixture
def fake_imds():
    from fake_imds import FakeImds
    f = FakeImds().start()
    yield f
    f.stop()


@pytest.fixture
def notify_socket():
    n = NotifySocket()
    yield n
    n.close()


@pytest.fixture
def daemon_factory():
    started = []

    def start(*args, **kw):
        d = Daemon(*args, **kw)
        started.append(d)
        return d

    yield start
    reports = [r for r in (d.cleanup() for d in started) if r]
    if reports:
        pytest.fail("sanitizer report from the daemon:\n" + reports[0])


@pytest.fixture
def node_env():
    """A node's outside world on loopback (tests/fakes/node_env.py)."""
    from node_env import NodeEnv
    env = NodeEnv()
    yield env
    env.stop()

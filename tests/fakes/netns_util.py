# SPDX-License-Identifier: BSD-3-Clause
"""Entering a named network namespace (ip netns add NAME) from a test process, for one block."""

import ctypes
import os
from contextlib import contextmanager

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextmanager
def in_netns(name):
    """Runs the block in network namespace NAME (this thread only): sockets made inside it, such
    as the fakes' listeners, belong to that namespace for good, and threads started inside it
    are in it too."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns back: {os.strerror(err)}")
    finally:
        os.close(target)
        os.close(own)

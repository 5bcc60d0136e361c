#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Runs NodeEnv (fake IMDS, STS and Kubernetes API server on loopback) as a process, for the demo
and for suites that need the fakes inside a network namespace. Prints one JSON line with the
daemon's arguments once everything listens, then serves until stdin closes or SIGTERM.

  run_node_env.py --pod app=10.200.0.2=app-role [--pod ...] [--workdir DIR]"""

import argparse
import json
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from node_env import BASE_ARN, NodeEnv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pod", action="append", default=[], help="name=ip=role (role may be empty)")
    ap.add_argument("--workdir")
    args = ap.parse_args()

    env = NodeEnv(workdir=args.workdir)
    for spec in args.pod:
        name, ip, role = (spec.split("=", 2) + ["", ""])[:3]
        env.add_pod(name, ip, role=role or None)
    print(json.dumps({"daemon_args": env.daemon_args(), "base_arn": BASE_ARN, "imds": env.imds.addr,
                      "sts_port": env.sts.port, "api": env.api.url}), flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    env.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

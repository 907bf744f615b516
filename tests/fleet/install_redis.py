#!/usr/bin/env python3
"""Install `redis-server` for the fleet tests (tests/fleet/), once.

Run `python tests/fleet/install_redis.py`: when `redis-server` is not on PATH it installs
Debian's `redis-server` package with apt-get (as root, without prompts; `apt-get update`
first when the package lists do not know it), and prints the binary's path on its last
line. The package's own service is not started: the tests start a private server on a
free loopback port with persistence off and stop it after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

PACKAGE = "redis-server"
#: how long one apt-get step may take
STEP_TIMEOUT = 900.0


def _apt(*args: str) -> bool:
    argv = ["apt-get", *args]
    print(f"running: {' '.join(argv)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=STEP_TIMEOUT, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"apt-get {args[0]} did not finish: {type(exc).__name__}", flush=True)
        return False
    return done.returncode == 0


def install() -> str | None:
    """The path of `redis-server`, installing Debian's package when it is missing; None when that fails."""
    found = shutil.which(PACKAGE)
    if found:
        print(f"redis-server already installed at {found}", flush=True)
        return found
    if shutil.which("apt-get") is None:
        print("redis-server is missing and apt-get is not here: install Redis 7 by other means", flush=True)
        return None
    if os.geteuid() != 0:
        print("redis-server is missing: run `sudo apt-get install -y redis-server` (this script installs as root only)")
        return None
    print("installing Debian's redis-server for the fleet tests (shared state on Redis)", flush=True)
    # policy-rc.d keeps the package from starting its own service: the tests run their own server
    policy = "/usr/sbin/policy-rc.d"
    wrote_policy = not os.path.exists(policy)
    if wrote_policy:
        with open(policy, "w") as file:
            file.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        if not _apt("install", "-y", "-q", "--no-install-recommends", PACKAGE):
            _apt("update", "-q")
            _apt("install", "-y", "-q", "--no-install-recommends", PACKAGE)
    finally:
        if wrote_policy:
            os.remove(policy)
    return shutil.which(PACKAGE) or (f"/usr/bin/{PACKAGE}" if os.access(f"/usr/bin/{PACKAGE}", os.X_OK) else None)


def main() -> int:
    found = install()
    if found is None:
        print("redis-server could not be installed; the fleet tests will be skipped", flush=True)
        return 1
    print(found, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Install Debian's Chromium for the browser test in tests/test_fastapi.py. Idempotent.
#
# Root (CI, the project's machines) installs with apt-get; anyone else needs password-less
# sudo. Where it cannot install, it says so and exits 0: the browser test then skips,
# except under CI=true, where it fails (and so does this script).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null | head -n 1))"
    exit 0
fi

cannot() {
    if [ -n "${CI:-}" ]; then
        echo "chromium: $1; CI needs it for the browser test" >&2
        exit 1
    fi
    echo "chromium: $1; the browser test will be skipped" >&2
    exit 0
}

command -v apt-get >/dev/null 2>&1 || cannot "apt-get not found (not Debian or Ubuntu): install Chromium by hand"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || cannot "not root and no password-less sudo: run this script as root"
    SUDO=(sudo -n)
fi

echo "chromium: updating the package lists"
"${SUDO[@]}" apt-get update -qq
echo "chromium: installing Debian's chromium package (a few minutes on a cold machine)"
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null | head -n 1))"

#!/usr/bin/env bash
# Install everything the tests need, from scratch, then run them.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# LibreOffice (headless) opens the generated .xlsm in the tests; Debian/Ubuntu only.
if ! command -v soffice >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends libreoffice-calc-nogui python3-uno
fi

# Chromium (Debian's) for the account pages' browser tests, driven by Playwright; never
# a browser download (no `playwright install`).
if ! [ -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium
fi

# PostgreSQL's programs (Debian's) for the tests on PostgreSQL: they start a throw-away
# server in a temporary folder, as the user nobody when run as root; never a service.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && command -v apt-get >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends postgresql
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check xlstock tests bench
.venv/bin/mypy xlstock
.venv/bin/python -m pytest "$@"

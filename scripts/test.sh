#!/usr/bin/env bash
# Install everything the tests need, from scratch, then run them.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests drive for real, from Debian's packages (never a browser download):
# LibreOffice headless (opens and saves workbooks as a merchant's would), Chromium (the
# account pages, through Playwright) and PostgreSQL (a throw-away cluster per run).
# One apt-get update for whatever is missing; skipped where all is there or not root.
missing=()
command -v soffice >/dev/null 2>&1 || missing+=(libreoffice-calc-nogui python3-uno)
[ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    source scripts/apt.sh  # apt_get waits for another apt run's lock
    apt_get update -q
    apt_get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check xlstock tests bench
.venv/bin/mypy xlstock
.venv/bin/lint-imports --no-logo --no-cache  # the layering of docs/architecture.md (pyproject.toml)
.venv/bin/python -m pytest "$@"

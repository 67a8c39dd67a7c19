#!/usr/bin/env bash
# The README's install as a new user does it, on this machine: build the source
# archive and the wheel from it (`python -m build`, so the archive must carry all the
# wheel needs), install the wheel with the server extra into a fresh venv in a
# temporary folder, and run `xlstock demo` there. Also checks that the installed
# `xlstock new` writes the committed workbook_template.xlsx byte for byte.
# Usage: bash scripts/wheel-demo.sh   (PYTHON: the interpreter with `build`, default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
wheels=("$work"/dist/xlstock-*.whl)
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "${wheels[0]}[server]"

cd "$work"  # nothing of the clone on the path: only what the wheel carries
"$work/venv/bin/xlstock" demo --dir "$work/demo"
test -s "$work/demo/xlstock-demo.xlsx"
"$work/venv/bin/xlstock" new "$work/template.xlsx" -q
cmp "$work/template.xlsx" "$repo/workbook_template.xlsx"
echo "wheel-demo: ${wheels[0]##*/} installed in a fresh venv runs the demo"

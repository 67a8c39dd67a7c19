"""``python -m xlstock.cli``: the same as the ``xlstock`` command."""

from xlstock.__main__ import run

run()

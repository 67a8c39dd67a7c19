"""``python -m xlstock``: the same as the ``xlstock`` command."""

from xlstock.cli import run

run()

"""The queue rule of group commit, one for the SQLite and the PostgreSQL writers: a
writer waits for one job, then takes every job already waiting, up to a limit, and
commits them together."""

from __future__ import annotations

import queue
from typing import Any

STOP = object()
"""Put in a writer's queue to end it, after the jobs before it."""


def next_group(jobs: queue.Queue[Any], limit: int) -> tuple[list[Any], bool]:
    """The next group of jobs: the first waited for, then those already in ``jobs``,
    at most ``limit`` in all; and whether :data:`STOP` came (the writer ends once this
    group, possibly empty, is committed)."""
    first = jobs.get()
    if first is STOP:
        return [], True
    group = [first]
    while len(group) < limit:
        try:
            more = jobs.get_nowait()
        except queue.Empty:
            break
        if more is STOP:
            return group, True
        group.append(more)
    return group, False

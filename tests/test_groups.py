"""xlstock.server.groups: how a writer takes its next group of jobs."""

from __future__ import annotations

import queue

from xlstock.server.groups import STOP, next_group


def queued(*items: object) -> queue.Queue[object]:
    jobs: queue.Queue[object] = queue.Queue()
    for item in items:
        jobs.put(item)
    return jobs


def test_a_group_is_every_job_waiting_up_to_the_limit() -> None:
    jobs = queued(1, 2, 3, 4, 5)
    assert next_group(jobs, 3) == ([1, 2, 3], False)
    assert next_group(jobs, 3) == ([4, 5], False)


def test_stop_ends_the_writer_after_the_jobs_before_it() -> None:
    jobs = queued(1, 2, STOP, 3)
    assert next_group(jobs, 10) == ([1, 2], True)
    assert next_group(queued(STOP), 10) == ([], True)

"""Large freed blocks given back to the system at once (glibc's malloc): the peak memory
of a command at 1,000,000 SKUs is not the sum of the holes its freed lists, sets and
dicts leave in the heap (issue 22 point 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

_FREED = textwrap.dedent("""
    import sys
    from xlstock import __main__ as main
    if sys.argv[1] == "set":
        main._give_back_large_blocks()
    def rss():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
    big = bytearray(16 << 20); del big     # glibc now maps only blocks over 16 MB apart
    block = bytearray(6 << 20)             # 6 MB, touched
    pin = [bytearray(1000) for _ in range(2000)]  # the heap's top, above the block
    before = rss()
    del block
    print(before - rss())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_large_freed_block_is_given_back_to_the_system() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}

    def given_back(how: str) -> int:
        run = subprocess.run([sys.executable, "-c", _FREED, how], capture_output=True,
                             text=True, env=env, check=True)
        return int(run.stdout)

    assert given_back("set") >= 5 * 1024  # KiB: the 6 MB block went back
    assert given_back("default") < 1024  # glibc's own threshold kept it in the heap

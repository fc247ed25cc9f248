"""The writers' shared worker threads (io.workers): started once, and anew in a forked child."""

from __future__ import annotations

import os
import sys

import pytest

from modelpack.io.workers import WORKERS, shared_pool


def test_the_pool_is_started_once():
    assert shared_pool() is shared_pool()
    assert shared_pool()._max_workers == WORKERS


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_a_pool_of_its_own():
    """The parent's threads do not exist in a child: its pool would never run a task."""
    parent = shared_pool()
    assert parent.submit(sum, [1, 2]).result() == 3  # the parent's threads are started
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        try:
            child = shared_pool()
            ok = child is not parent and child.submit(sum, [3, 4]).result(timeout=10) == 7
        except BaseException:
            ok = False
        sys.stdout.flush()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

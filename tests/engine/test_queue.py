"""The engine's bounded queue: refusing when full, removing a cancelled job by identity."""

from __future__ import annotations

import pytest

from mlxcli.core.errors import Overloaded
from mlxcli.engine.queue import BoundedQueue


class Touchy:
    """A job that another thread is changing: formatting or comparing it would raise (found by the soak:
    a client hanging up made ``remove`` format the whole running job, prompt and model included)."""

    def __repr__(self) -> str:
        raise RuntimeError("dictionary changed size during iteration")

    def __eq__(self, other) -> bool:
        raise RuntimeError("compared field by field")

    __hash__ = object.__hash__


def test_a_job_that_already_left_the_queue_is_neither_formatted_nor_compared():
    queue = BoundedQueue(4)
    queue.put(Touchy())
    assert queue.remove(Touchy()) is False
    assert len(queue) == 1


def test_a_waiting_job_is_removed_by_identity():
    queue = BoundedQueue(4)
    first, second = Touchy(), Touchy()
    queue.put(first)
    queue.put(second)
    assert queue.remove(second) is True
    assert queue.get_nowait() is first and queue.get_nowait() is None


def test_a_full_queue_refuses_at_once():
    queue = BoundedQueue(1)
    queue.put(object())
    with pytest.raises(Overloaded):
        queue.put(object())

"""que.testing.InlineQueue: enqueued jobs collected, and assert_enqueued."""

from __future__ import annotations

import asyncio

import pytest

import que
from que.testing import InlineQueue


@pytest.fixture
def reg() -> que.Registry:
    return que.Registry()


def test_decorated_jobs_are_collected_on_both_faces(reg: que.Registry) -> None:
    @que.job(name="Mailer::Welcome", queue="mail", registry=reg)
    def welcome(user_id: int) -> None: ...

    inline = InlineQueue()
    with inline.active(reg):
        welcome.enqueue(1)
        asyncio.run(welcome.enqueue_async(2))
    assert [job.args for job in inline.assert_enqueued(welcome, count=2)] == [[1], [2]]
    assert inline.assert_enqueued("Mailer::Welcome", args=[2], queue="mail")[0].id == 2
    assert reg.client is None and reg.aclient is None  # given back after the block


def test_a_client_stand_in_for_code_that_takes_one() -> None:
    inline = InlineQueue()
    inline.enqueue(que.Job(type="A", args=[1]))
    inline.enqueue_many([que.Job(type="B"), que.Job(type="B", priority=5)])
    asyncio.run(inline.async_face.enqueue(que.AsyncJob(type="C")))
    assert [job.type for job in inline.jobs] == ["A", "B", "B", "C"]
    inline.assert_enqueued("B", priority=5, count=1)
    inline.clear()
    inline.assert_nothing_enqueued()


def test_the_failure_message_lists_what_was_enqueued() -> None:
    inline = InlineQueue()
    inline.enqueue(que.Job(type="A", args=[1]))
    with pytest.raises(AssertionError) as failure:
        inline.assert_enqueued("A", args=[2])
    message = str(failure.value)
    assert "type='A', args=[2]" in message and "at least once" in message
    assert "A args=[1] queue='' priority=100" in message
    with pytest.raises(AssertionError, match=r"1 time\(s\), found 0"):
        inline.assert_enqueued("B", count=1)
    with pytest.raises(AssertionError, match="0 time"):
        inline.assert_nothing_enqueued()

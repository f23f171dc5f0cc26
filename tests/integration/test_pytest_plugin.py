"""que's pytest plugin, as a project uses it: pytest runs a sample project in
a subprocess, with the plugin loaded through its entry point."""

from __future__ import annotations

import pytest

SAMPLE = """
import que

@que.job(name="Sample::Welcome")
def welcome(user_id: int) -> None:
    WELCOMED.append(user_id)

WELCOMED = []

def sign_up(user_id: int) -> None:
    welcome.enqueue(user_id)

def test_inline(que_inline):
    sign_up(42)
    que_inline.assert_enqueued(welcome, args=[42])

async def test_inline_async_face(que_inline):
    await welcome.enqueue_async(7)
    que_inline.assert_enqueued("Sample::Welcome", args=[7], count=1)

def test_each_test_has_its_own_database(que_client, que_drain):
    assert que_client.stats() == []
    sign_up(1)
    sign_up(2)
    assert que_drain() == 2
    assert WELCOMED[-2:] == [1, 2] and que_client.stats() == []

async def test_async_face(que_async_client, que_async_drain):
    await welcome.enqueue_async(3)
    assert await que_async_drain() == 1
    assert WELCOMED[-1] == 3
"""


def test_a_project_that_opts_in_gets_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nque_fixtures = true\nasyncio_mode = auto\n")
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


STRICT_SAMPLE = """
import pytest
import que

@que.job(name="Sample::Strict")
def strict(n: int) -> None:
    DONE.append(n)

DONE = []

@pytest.mark.asyncio
async def test_async_fixtures_in_strict_mode(que_async_client, que_async_drain):
    await strict.enqueue_async(5)
    assert await que_async_drain() == 1
    assert DONE == [5]
"""


def test_the_async_fixtures_work_in_pytest_asyncio_strict_mode(
    pytester: pytest.Pytester,
) -> None:
    # pytest-asyncio's default mode: only its own fixtures run as async ones.
    pytester.makeini(
        "[pytest]\nque_fixtures = true\nasyncio_mode = strict\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_sample=STRICT_SAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_without_opting_in_there_are_no_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_sample="def test_x(que_inline):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'que_inline' not found*"])


def test_p_option_opts_in_too(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_sample="def test_x(que_inline):\n    que_inline.assert_nothing_enqueued()\n"
    )
    result = pytester.runpytest_subprocess("-p", "que.pytest_fixtures", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)

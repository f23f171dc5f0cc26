import pytest

from que._work import (
    DEFAULT_WAKE_INTERVAL,
    check_work_map,
    is_async_callable,
    queue_name,
    retry_delay,
    wake_interval,
)


def test_wake_interval_precedence() -> None:
    assert wake_interval(None, {}) == DEFAULT_WAKE_INTERVAL
    assert wake_interval(None, {"QUE_WAKE_INTERVAL": "0.25"}) == 0.25
    assert wake_interval(2, {"QUE_WAKE_INTERVAL": "0.25"}) == 2.0


@pytest.mark.parametrize("raw", ["soon", "-1", "0", "nan"])
def test_bad_wake_interval_names_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match="QUE_WAKE_INTERVAL"):
        wake_interval(None, {"QUE_WAKE_INTERVAL": raw})


def test_queue_precedence() -> None:
    assert queue_name(None, {}) == ""
    assert queue_name(None, {"QUE_QUEUE": "mail"}) == "mail"
    assert queue_name("billing", {"QUE_QUEUE": "mail"}) == "billing"


def test_retry_delay_doubles_and_is_capped() -> None:
    delays = [retry_delay(n, 5.0) for n in range(1, 12)]
    assert delays[:3] == [0.25, 0.5, 1.0]
    assert delays == sorted(delays)
    assert max(delays) == 10.0


async def _async_work(job: object) -> None:
    return None


class _AsyncCallable:
    async def __call__(self, job: object) -> None:
        return None


def test_work_map_checks() -> None:
    assert check_work_map({"A": print}, worker="Worker", allow_async=False) == {"A": print}
    with pytest.raises(TypeError, match="'A' is an async function"):
        check_work_map({"A": _async_work}, worker="Worker", allow_async=False)
    with pytest.raises(TypeError, match="'A' is an async function"):
        check_work_map({"A": _AsyncCallable()}, worker="Worker", allow_async=False)
    with pytest.raises(TypeError, match="not callable"):
        check_work_map({"A": 3}, worker="Worker", allow_async=False)
    with pytest.raises(TypeError, match="needs a work map"):
        check_work_map([print], worker="Worker", allow_async=False)
    with pytest.raises(TypeError, match="non-empty job type"):
        check_work_map({"": print}, worker="Worker", allow_async=False)


class _AsyncCall:
    async def __call__(self, job: object) -> None:
        return None


class _UnhashableAsyncCall(_AsyncCall):
    __hash__ = None  # type: ignore[assignment]


def test_is_async_callable_for_functions_and_callable_objects() -> None:
    async def coro(job: object) -> None:
        return None

    def plain(job: object) -> None:
        return None

    for _ in range(2):  # the second time from what was kept
        assert is_async_callable(coro) and not is_async_callable(plain)
        assert is_async_callable(_AsyncCall())
        assert is_async_callable(_UnhashableAsyncCall())
        assert not is_async_callable(print)

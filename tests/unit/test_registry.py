"""@que.job without a database: names, stored args, options, the runner, limits."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import que
from que import Registry
from que._registry import attempts_per_type, positional_args
from que.errors import QueError


@pytest.fixture
def reg() -> Registry:
    return Registry()


class Collect:
    """Stands in for a client: keeps what it is asked to enqueue."""

    def __init__(self) -> None:
        self.jobs: list[Any] = []
        self.conns: list[Any] = []

    def enqueue(self, job: que.Job, *, conn: Any = None) -> que.Job:
        self.jobs.append(job)
        self.conns.append(conn)
        return job


def test_default_name_is_module_and_function(reg: Registry) -> None:
    @que.job(registry=reg)
    def send_welcome(user_id: int) -> None: ...

    assert (
        send_welcome.name
        == f"{__name__}.test_default_name_is_module_and_function.<locals>.send_welcome"
    )
    assert reg.jobs == {send_welcome.name: send_welcome}


def test_name_overrides_with_a_ruby_constant_path(reg: Registry) -> None:
    @que.job(name="Mailer::Welcome", queue="mail", priority=5, registry=reg)
    def welcome(user_id: int, tone: str = "warm") -> None: ...

    client = Collect()
    job = welcome.options(client=client).enqueue(42, tone="dry")
    assert (job.type, job.args, job.queue, job.priority) == (
        "Mailer::Welcome",
        [42, "dry"],
        "mail",
        5,
    )


def test_the_function_still_runs_directly(reg: Registry) -> None:
    @que.job(registry=reg)
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5


def test_wrong_arguments_fail_at_enqueue(reg: Registry) -> None:
    @que.job(name="T", registry=reg)
    def f(a: int) -> None: ...

    with pytest.raises(TypeError, match="job 'T': missing a required argument: 'a'"):
        f.options(client=Collect()).enqueue()  # type: ignore[call-arg]


def test_keyword_only_arguments_cannot_be_stored(reg: Registry) -> None:
    @que.job(name="T", registry=reg)
    def f(a: int, *, b: int = 0) -> None: ...

    with pytest.raises(TypeError, match="keyword-only arguments"):
        f.options(client=Collect()).enqueue(1, b=2)


def test_configured_client_and_conn(reg: Registry) -> None:
    @que.job(name="T", registry=reg)
    def f(a: int) -> None: ...

    with pytest.raises(QueError, match=r"no client to enqueue job 'T'.*que.configure"):
        f.enqueue(1)
    client = Collect()
    que.configure(client, registry=reg)
    f.enqueue(1)
    f.options(conn="the caller's transaction").enqueue(2)
    assert [j.args for j in client.jobs] == [[1], [2]]
    assert client.conns == [None, "the caller's transaction"]
    que.configure(None, registry=reg)
    assert reg.client is None


def test_run_at_and_delay(reg: Registry) -> None:
    @que.job(name="T", registry=reg)
    def f() -> None: ...

    client = Collect()
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert f.options(client=client, run_at=when).enqueue().run_at == when
    before = datetime.now(timezone.utc)
    job = f.options(client=client, delay=timedelta(minutes=5)).enqueue()
    assert job.run_at is not None and job.run_at >= before + timedelta(minutes=5)
    with pytest.raises(ValueError, match="run_at or delay"):
        f.options(run_at=when, delay=1)
    with pytest.raises(ValueError, match="delay must be"):
        f.options(delay=-1)


def test_a_second_function_under_one_name_is_refused(reg: Registry) -> None:
    @que.job(name="T", registry=reg)
    def f() -> None: ...

    with pytest.raises(ValueError, match="job type 'T' is already registered"):

        @que.job(name="T", registry=reg)
        def g() -> None: ...


def test_bad_settings_are_refused(reg: Registry) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        que.job(max_attempts=0, registry=reg)
    with pytest.raises(ValueError, match="retry"):
        que.job(retry=-3, registry=reg)
    with pytest.raises(que.InvalidJobError, match="priority"):
        que.job(priority=40000, registry=reg)


def test_runner_unpacks_args_and_sets_current_job(reg: Registry) -> None:
    seen: list[Any] = []

    @que.job(name="T", registry=reg)
    def f(a: int, b: str) -> None:
        seen.append((a, b, que.current_job().id))

    job = que.Job(type="T", args=[1, "x"], id=7)
    reg.work_map()["T"](job)
    assert seen == [(1, "x", 7)]
    with pytest.raises(QueError, match="only set while a worker runs"):
        que.current_job()


def test_async_runner(reg: Registry) -> None:
    @que.job(name="T", registry=reg)
    async def f(a: int) -> int:
        return a + que.current_job().error_count

    result = asyncio.run(reg.work_map()["T"](que.AsyncJob(type="T", args=[1], error_count=2)))
    assert result == 3


def test_args_that_are_not_an_array_fail_the_job() -> None:
    with pytest.raises(TypeError, match="args of type dict"):
        positional_args(que.Job(type="T", args={"a": 1}))


def test_retry_and_max_attempts_reach_clients_and_workers(reg: Registry) -> None:
    @que.job(name="T", retry=30, max_attempts=4, registry=reg)
    def f() -> None: ...

    assert reg.retry_intervals == {"T": 30}
    work_map = reg.work_map()
    assert attempts_per_type(work_map, None) == {"T": 4}
    assert attempts_per_type(work_map, {"T": 9}) == {"T": 9}  # the worker's setting wins
    assert attempts_per_type({"T": f}, None) == {"T": 4}  # the function itself in a map


def test_default_registry_retry_reaches_the_client_backoff() -> None:
    @que.job(name="tests.unit.test_registry.Retried", retry=lambda n: 7.0 * n)
    def retried() -> None: ...

    try:
        from que._client_base import ClientBase

        base: ClientBase[Any] = ClientBase(min_connections=0, max_connections=1, retry_intervals={})
        assert base.backoff.delay("tests.unit.test_registry.Retried", 2) == 14.0
        mine = ClientBase[Any](
            min_connections=0,
            max_connections=1,
            retry_intervals={"tests.unit.test_registry.Retried": 1},
        )
        assert mine.backoff.delay("tests.unit.test_registry.Retried", 2) == 1.0
    finally:
        que.registry.unregister("tests.unit.test_registry.Retried")
    assert "tests.unit.test_registry.Retried" not in que.registry.retry_intervals


def test_keyword_arguments_after_a_skipped_default_are_stored_positionally(
    reg: Registry,
) -> None:
    @que.job(name="T", registry=reg)
    def k(a: int, b: int = 1, c: int = 2, *rest: int) -> None: ...

    client = Collect()
    bound = k.options(client=client)
    bound.enqueue(1, c=5)  # b's default is stored as it is now
    bound.enqueue(1)  # trailing defaults are left to the function
    bound.enqueue(a=1, b=3)
    bound.enqueue(1, 2, 3, 4, 5)
    assert [j.args for j in client.jobs] == [[1, 1, 5], [1], [1, 3], [1, 2, 3, 4, 5]]


def test_unused_keyword_only_defaults_are_fine(reg: Registry) -> None:
    @que.job(name="T", registry=reg)
    def f(a: int, *, b: int = 0, **extra: int) -> None: ...

    client = Collect()
    f.options(client=client).enqueue(1)
    assert [j.args for j in client.jobs] == [[1]]
    with pytest.raises(TypeError, match=r"keyword-only arguments \['x'\]"):
        f.options(client=client).enqueue(1, x=2)

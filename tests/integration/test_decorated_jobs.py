"""@que.job on a real database, on both faces: enqueue (alone and in the
caller's transaction), a worker running the function with its args, and
retry= and max_attempts= reaching the worker."""

from __future__ import annotations

from typing import Any

import psycopg

import que

from ..sides import AnyClient, Side, r


def registry_with(side: Side, client: AnyClient) -> que.Registry:
    reg = que.Registry()
    que.configure(client, registry=reg)
    return reg


async def enqueue(side: Side, job: Any, *args: Any, **options: Any) -> Any:
    bound = job.options(**options) if options else job
    if side.is_async:
        return await bound.enqueue_async(*args)
    return bound.enqueue(*args)


async def test_enqueue_and_work_with_args_unpacked(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    reg = registry_with(side, qc)
    seen: list[Any] = []

    @que.job(name="Mailer::Welcome", queue="mail", priority=7, registry=reg)
    def welcome(user_id: int, tone: str = "warm") -> None:
        seen.append((user_id, tone, que.current_job().type))

    job = await enqueue(side, welcome, 42)
    assert isinstance(job, side.job_class) and job.id is not None
    row = conn.execute("SELECT job_class, args::text, queue, priority FROM que_jobs").fetchone()
    assert row == ("Mailer::Welcome", "[42]", "mail", 7)

    worker = side.worker(qc, reg.work_map(), queue="mail")
    assert await r(worker.work_one()) is True
    assert seen == [(42, "warm", "Mailer::Welcome")]
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


async def test_conn_joins_the_callers_transaction(side: Side, qc: AnyClient, db_url: str) -> None:
    reg = registry_with(side, qc)

    @que.job(name="T", registry=reg)
    def t(n: int) -> None: ...

    async with side.connection(db_url) as tx:
        await enqueue(side, t, 1, conn=tx)
        await r(tx.rollback())
        await enqueue(side, t, 2, conn=tx)
        await r(tx.commit())
    with psycopg.connect(db_url) as check:
        assert check.execute("SELECT args::text FROM que_jobs").fetchall() == [("[2]",)]


async def test_retry_and_max_attempts(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    name = f"tests.integration.Flaky.{side.name}"

    # In the default registry: its retry= reaches every client's backoff.
    @que.job(name=name, retry=3600, max_attempts=2)
    def flaky() -> None:
        raise RuntimeError("down")

    try:
        await enqueue(side, flaky, client=qc)
        worker = side.worker(qc, {name: flaky})
        assert await r(worker.work_one()) is True
        row = conn.execute(
            "SELECT error_count, run_at - now() > interval '59 minutes' FROM que_jobs"
        ).fetchone()
        assert row == (1, True)
        conn.execute("UPDATE que_jobs SET run_at = now()")
        assert await r(worker.work_one()) is True
        assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)
        dead = conn.execute("SELECT outcome, error_count FROM que_dead_jobs").fetchall()
        assert dead == [("exhausted", 2)]
    finally:
        que.registry.unregister(name)

"""What only the async side has: opening, ``async with client.lock_job()``, cancellation,
sync work functions in threads, and clear errors when the two sides are mixed."""

import asyncio
import threading
from typing import Any

import psycopg
import psycopg_pool
import pytest

import que

from ..helpers import advisory_lock_count, assert_clean_either, no_unawaited_coroutine
from ..sides import Side, r, wait_until


def remaining(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert row is not None
    return int(row[0])


# -- opening and closing -----------------------------------------------------------


async def test_connect_opens_and_close_is_idempotent(db_url: str) -> None:
    client = await que.AsyncClient.connect(db_url)
    try:
        await client.open()  # opening again is harmless
        job = await client.enqueue(que.Job(type="T"))
        assert isinstance(job.id, int)
        assert [s.type for s in await client.stats()] == ["T"]
        await assert_clean_either(client, db_url)
    finally:
        await client.close()
    await client.close()


async def test_a_client_used_before_open_raises(db_url: str) -> None:
    client = que.AsyncClient(db_url)
    with pytest.raises(que.QueError, match="not open"):
        await client.enqueue(que.Job(type="T"))
    with pytest.raises(que.QueError, match="not open"):
        await client.enqueue_many([que.Job(type="T")])
    with pytest.raises(que.QueError, match="not open"):
        await client.lock_job()
    with pytest.raises(que.QueError, match="not open"):
        async with client.lock_job():
            pass
    with pytest.raises(que.QueError, match="not open"):
        await client.stats()
    await client.close()


async def test_client_from_a_given_async_pool(db_url: str, conn: psycopg.Connection[Any]) -> None:
    async with psycopg_pool.AsyncConnectionPool(db_url, min_size=1, max_size=2) as pool:
        async with que.AsyncClient(pool) as client:
            assert client.max_connections == 2
            await client.enqueue(que.Job(type="B"))
            job = await client.lock_job()
            assert job is not None
            async with job:
                assert job.conn.autocommit is True  # claims run in autocommit
                await job.delete()
            await assert_clean_either(client, db_url)
        # the pool is the caller's: still open, connections back as they were
        assert not pool.closed
        async with pool.connection() as c:
            assert c.autocommit is False
            cur = await c.execute("SELECT count(*) FROM que_jobs")
            assert await cur.fetchone() == (0,)
    assert remaining(conn) == 0


async def test_client_from_a_connector(db_url: str) -> None:
    async with que.AsyncClient(que.get_connector_from_conninfo(db_url)) as client:
        assert (await client.enqueue(que.Job(type="A"))).id is not None


async def test_wrong_schema_version_is_refused_on_open(empty_db_url: str) -> None:
    with pytest.raises(que.SchemaVersionError, match="does not exist"):
        await que.AsyncClient.connect(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        que.migrate(conn, 2)
        with pytest.raises(que.SchemaVersionError, match="schema version 2"):
            await que.AsyncClient.connect(empty_db_url)
        que.migrate(conn)
        conn.execute("COMMENT ON TABLE que_jobs IS '4'")
        with pytest.raises(que.SchemaVersionError, match="version 4"):
            await que.AsyncClient.connect(empty_db_url)
        async with psycopg_pool.AsyncConnectionPool(empty_db_url, min_size=1) as pool:
            with pytest.raises(que.SchemaVersionError, match="version 4"):
                async with que.AsyncClient(pool):
                    pass
    async with que.AsyncClient(empty_db_url, check_schema=False) as client:
        assert client.target != ""


# -- async with client.lock_job() ----------------------------------------------------


async def test_lock_job_as_a_context_manager_finishes_the_job(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    enqueued = await aclient.enqueue(que.Job(type="T", args=["x"]))
    async with aclient.lock_job() as job:
        assert isinstance(job, que.AsyncJob)
        assert (job.id, job.args) == (enqueued.id, ["x"])
        assert advisory_lock_count(db_url) == 1
        await job.delete()
    assert advisory_lock_count(db_url) == 0
    assert remaining(conn) == 0
    async with aclient.lock_job() as nothing:
        assert nothing is None


async def test_lock_job_context_manager_releases_the_job_on_an_error(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    await aclient.enqueue(que.Job(type="T"))
    with pytest.raises(ZeroDivisionError):
        async with aclient.lock_job() as job:
            assert job is not None
            tx = await job.transaction()
            await tx.execute("CREATE TABLE effects (n int)")
            _ = 1 / 0
    assert advisory_lock_count(db_url) == 0
    assert conn.execute("SELECT to_regclass('effects')").fetchone() == (None,)  # rolled back
    assert conn.execute("SELECT error_count FROM que_jobs").fetchone() == (0,)  # kept as it was
    async with aclient.lock_job() as again:
        assert again is not None and again.id == job.id
        assert again.conn.autocommit is True
        await again.done()  # done() inside the block, then again at its end: harmless


async def test_lock_job_in_other_queues(aclient: que.AsyncClient) -> None:
    await aclient.enqueue(que.Job(type="M", queue="mail"))
    async with aclient.lock_job() as none_here:
        assert none_here is None
    async with aclient.lock_job("mail") as job:
        assert job is not None and job.queue == "mail"
        await job.delete()


# -- cancellation: a crashed task frees its job ----------------------------------------


async def test_cancelled_worker_task_releases_its_job(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    entered = asyncio.Event()

    async def hang(job: que.AsyncJob) -> None:
        entered.set()
        await asyncio.Event().wait()  # until cancelled

    job_id = (await aclient.enqueue(que.Job(type="Hang", args=[1]))).id
    worker = que.AsyncWorker(aclient, {"Hang": hang}, interval=0.05)
    task = asyncio.create_task(worker.work())
    await asyncio.wait_for(entered.wait(), 30)
    assert advisory_lock_count(db_url) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert advisory_lock_count(db_url) == 0
    row = conn.execute("SELECT job_id, error_count, last_error, args FROM que_jobs").fetchone()
    assert row == (job_id, 0, None, [1])  # the row is intact, not failed
    assert await worker.shutdown(1) is True  # the loop is over

    seen: list[int | None] = []

    async def finish(job: que.AsyncJob) -> None:
        seen.append(job.id)

    assert await que.AsyncWorker(aclient, {"Hang": finish}).work_one() is True
    assert seen == [job_id]
    assert remaining(conn) == 0


async def test_cancelled_mid_query_rolls_back_and_releases(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    """Cancelled while its transaction runs a statement: the statement is cancelled on
    the server, the transaction rolled back, the lock released, the connection reused."""
    conn.execute("CREATE TABLE effects (n int)")
    pids: list[int] = []

    async def long_write(job: que.AsyncJob) -> None:
        tx = await job.transaction()
        await tx.execute("INSERT INTO effects VALUES (1)")
        pids.append(tx.info.backend_pid)
        await tx.execute("SELECT pg_sleep(60)")

    def sleeping() -> bool:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
            "AND query LIKE '%%pg_sleep%%'",
            pids,
        ).fetchone()
        return row == (1,)

    await aclient.enqueue(que.Job(type="W"))
    worker = que.AsyncWorker(aclient, {"W": long_write}, interval=0.05)
    task = asyncio.create_task(worker.work_one())
    await wait_until(lambda: len(pids) == 1 and sleeping(), what="the job's statement runs")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert advisory_lock_count(db_url) == 0
    assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)
    assert conn.execute("SELECT error_count FROM que_jobs").fetchone() == (0,)
    async with aclient.lock_job() as job:
        assert job is not None
        assert job.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        await job.delete()


# -- sync work functions run in a thread ---------------------------------------------


async def test_a_sync_work_function_runs_in_a_thread_not_on_the_loop(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    loop_thread = threading.get_ident()
    ran_in: list[int] = []
    unblocked: list[bool] = []
    in_function = threading.Event()
    loop_ran = threading.Event()

    def blocking(job: que.AsyncJob) -> None:
        ran_in.append(threading.get_ident())
        in_function.set()
        # Blocks its thread until this test's coroutine sets loop_ran. Run on the
        # event loop, it would stall that coroutine and time out instead.
        unblocked.append(loop_ran.wait(10))

    await aclient.enqueue(que.Job(type="Block"))
    worker = que.AsyncWorker(aclient, {"Block": blocking})
    working = asyncio.create_task(worker.work_one())
    await wait_until(in_function.is_set, what="the function started")
    loop_ran.set()  # the loop ran this while the function was blocked
    assert await asyncio.wait_for(working, 30) is True
    assert unblocked == [True]
    assert len(ran_in) == 1 and ran_in[0] != loop_thread
    assert remaining(conn) == 0


async def test_a_blocking_sync_function_does_not_stall_other_workers(
    db_url: str, conn: psycopg.Connection[Any]
) -> None:
    """While one worker's sync function blocks, another worker of the pool claims,
    runs and deletes jobs on the event loop."""
    quick_done = threading.Event()
    quick: list[int] = []
    unblocked: list[bool] = []

    def block(job: que.AsyncJob) -> None:
        unblocked.append(quick_done.wait(10))

    async def hurry(job: que.AsyncJob) -> None:
        quick.append(job.args[0])
        if len(quick) == 5:
            quick_done.set()

    async with que.AsyncClient(db_url, max_connections=2) as client:
        await client.enqueue(que.Job(type="Block", priority=1))
        await client.enqueue_many([que.Job(type="Quick", args=[i], priority=2) for i in range(5)])
        pool = que.AsyncWorkerPool(client, {"Block": block, "Quick": hurry}, 2, interval=0.05)
        pool.start()
        try:
            await wait_until(lambda: remaining(conn) == 0, what="every job worked")
        finally:
            quick_done.set()
            assert await pool.shutdown(30) is True
        await assert_clean_either(client, db_url)
    assert unblocked == [True]
    assert sorted(quick) == [0, 1, 2, 3, 4]


async def test_a_sync_function_returning_a_coroutine_has_it_awaited(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    seen: list[Any] = []

    async def later(job: que.AsyncJob) -> None:
        seen.append(job.args)

    def returns_a_coroutine(job: que.AsyncJob) -> Any:
        return later(job)

    await aclient.enqueue(que.Job(type="A", args=[3]))
    with no_unawaited_coroutine():
        assert await que.AsyncWorker(aclient, {"A": returns_a_coroutine}).work_one() is True
    assert seen == [[3]]
    assert remaining(conn) == 0


async def test_an_async_callable_object_is_awaited(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    class Handler:
        def __init__(self) -> None:
            self.seen: list[Any] = []

        async def __call__(self, job: que.AsyncJob) -> None:
            self.seen.append(threading.get_ident())

    handler = Handler()
    await aclient.enqueue(que.Job(type="C"))
    assert await que.AsyncWorker(aclient, {"C": handler}).work_one() is True
    assert handler.seen == [threading.get_ident()]  # on the loop, not in a thread
    assert remaining(conn) == 0


# -- mixing the sides is a clear error at once ---------------------------------------


async def test_a_sync_connection_given_to_the_async_client_is_refused(
    aclient: que.AsyncClient, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(db_url) as caller, no_unawaited_coroutine():
        with pytest.raises(TypeError, match=r"needs a psycopg\.AsyncConnection"):
            await aclient.enqueue(que.Job(type="T"), conn=caller)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"needs a psycopg\.AsyncConnection"):
            await aclient.enqueue_in_tx(que.Job(type="T"), caller)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"needs a psycopg\.AsyncConnection"):
            await aclient.enqueue_many([que.Job(type="T")], conn=caller)  # type: ignore[arg-type]
        assert caller.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert remaining(conn) == 0


async def test_an_async_connection_given_to_the_sync_client_is_refused(
    client: que.Client, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as caller:
        with no_unawaited_coroutine():
            with pytest.raises(TypeError, match=r"psycopg\.Connection"):
                client.enqueue(que.Job(type="T"), conn=caller)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"psycopg\.Connection"):
                client.enqueue_in_tx(que.Job(type="T"), caller)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"psycopg\.Connection"):
                client.enqueue_many([que.Job(type="T")], conn=caller)  # type: ignore[arg-type]
        assert caller.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert remaining(conn) == 0


async def test_clients_and_pools_of_the_other_side_are_refused(
    client: que.Client, aclient: que.AsyncClient, db_url: str
) -> None:
    with no_unawaited_coroutine():
        with pytest.raises(TypeError, match=r"needs a que\.Client"):
            que.Worker(aclient, {})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"needs a que\.Client"):
            que.WorkerPool(aclient, {})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"needs a que\.AsyncClient"):
            que.AsyncWorker(client, {})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"needs a que\.AsyncClient"):
            que.AsyncWorkerPool(client, {})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="AsyncConnectionPool"):
            que.AsyncClient(client.connections.pool)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"Client needs a psycopg_pool\.ConnectionPool"):
            que.Client(aclient.connections.pool)  # type: ignore[arg-type]


async def test_async_work_functions_are_refused_by_the_sync_worker(client: que.Client) -> None:
    async def handler(job: que.Job) -> None:
        return None

    with no_unawaited_coroutine():
        with pytest.raises(TypeError, match=r"'A' is an async function.*\(use AsyncWorker\)"):
            que.Worker(client, {"A": handler})
        with pytest.raises(TypeError, match=r"'A' is an async function.*\(use AsyncWorker\)"):
            que.WorkerPool(client, {"A": handler}, 2)


def test_async_pool_start_outside_an_event_loop_is_a_clear_error() -> None:
    client = que.AsyncClient("postgresql://127.0.0.1:1/never-contacted")
    pool = que.AsyncWorkerPool(client, {}, 2)
    with no_unawaited_coroutine(), pytest.raises(que.QueError, match="needs a running event loop"):
        pool.start()
    assert pool._tasks == []


async def test_workers_refuse_a_client_that_is_not_open(db_url: str) -> None:
    client = que.AsyncClient(db_url)
    worker = que.AsyncWorker(client, {})
    with pytest.raises(que.QueError, match="not open"):
        await worker.work()
    engine = que.AsyncBatchWorker(client, {})
    with pytest.raises(que.QueError, match="not open"):
        engine.start()


async def test_closed_clients_say_so(side: Side, db_url: str) -> None:
    async with side.client(db_url) as client:
        pass
    with pytest.raises(que.QueError, match="is closed"):
        await r(client.lock_job())
    with pytest.raises(que.QueError, match="is closed"):
        await r(client.enqueue(que.Job(type="T")))

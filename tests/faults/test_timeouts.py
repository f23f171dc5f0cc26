"""Job timeouts in worker processes: a hung process is ended and replaced, and its
job is worked again after the backoff."""

from __future__ import annotations

import que

from .conftest import Workers, assert_exactly_once, effects, enqueue_records, wait_for


def test_hung_job_ends_its_process_and_is_worked_again(workers: Workers, fault_db: str) -> None:
    ids = enqueue_records(fault_db, 20)
    with que.Client(fault_db, max_connections=1) as client:
        hung = client.enqueue(que.Job(type="HangOnce")).id
    assert hung is not None
    supervisor = workers.start(
        "--processes", "2", "--concurrency", "2", "--job-timeout", "HangOnce=1"
    )
    wait_for(lambda: hung in effects(fault_db), "the hung job to be worked again", 90)
    assert workers.stop_all() == [0]
    log = supervisor.stderr()
    assert "ran past its timeout of 1s: ending this worker process" in log
    assert "exited with code 75; starting a new one" in log
    assert_exactly_once(fault_db, [*ids, hung])


def test_lone_worker_reports_a_job_past_its_timeout(workers: Workers, fault_db: str) -> None:
    enqueue_records(fault_db, 1, seconds=2.0)
    worker = workers.start("--concurrency", "1", "--job-timeout", "0.5")
    worker.wait_for_log("past its timeout of 0.5s")
    wait_for(lambda: len(effects(fault_db)) == 1, "the slow job to finish anyway")
    assert workers.stop_all() == [0]

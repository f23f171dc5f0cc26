# Generated from async_job_handle.py by scripts/generate_sync.py: edit that file, not this one.
"""Job, and the handle that finishes a claimed job: its connection,
its transaction and its state (deleted, error written, done).

A job's fields are a plain record (``BaseJob``); a job returned by a claim
also carries a handle, made here by the code that claimed it (the client,
or an engine), which says how the handle gets a connection and how it gives
the job back. Nothing outside this module touches a handle's connection.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import sql
from ._compat import Cancelled, being_cancelled, run_work
from ._last_error import failure_message, headline, storable, undecodable_message
from ._outcomes import DELETE, UNLOCK, Verdict
from ._timeouts import Watchdog
from ._tracing import JobSpan, job_span
from ._work import Outcome, log_outcome
from .backoff import Backoff
from .drivers import caller_statements
from .errors import Discard, JobLostError, QueError, Snooze, UnknownJobTypeError
from .hooks import HookKind, JobResult, hook_failed, hooks
from .job import BaseJob, job_key

logger = logging.getLogger(__name__)

AnyConnection = psycopg.Connection[Any]


@dataclass(eq=False)
class Job(BaseJob):
    """A Que job. One returned by ``Client.lock_job`` (or
    given to a work function) holds an advisory lock until ``done()``; use
    ``with`` so that ``done()`` always runs.

    Behind PgBouncer (a client with ``pgbouncer=True``) a job claimed by
    ``lock_job`` lives in its claim's transaction: whatever it writes on
    ``conn`` commits with ``delete()``, and ``error()`` or a bare ``done()``
    rolls it back.
    """

    _handle: JobHandle | None = field(default=None, init=False, repr=False)
    # What the handle knew as it let go of the job at done(). The job and its
    # handle refer to each other until then; after it, nothing cycles, so a
    # finished job is freed at once instead of by the cyclic collector (an
    # engine burning down short jobs kept thousands of them alive).
    _was_deleted: bool = field(default=False, init=False, repr=False)
    _was_cancelled: bool = field(default=False, init=False, repr=False)

    def _claimed(self) -> JobHandle:
        if self._handle is None:
            raise QueError("this job holds no connection: it was not locked, or done() ran")
        return self._handle

    @property
    def deleted(self) -> bool:
        """True once delete() has removed the row."""
        handle = self._handle
        return self._was_deleted if handle is None else handle.deleted

    @property
    def cancelled(self) -> bool:
        """True once someone asked for this running job to stop (``que jobs
        cancel``, ``client.jobs.cancel``). A job in a thread checks it at safe
        points and returns or raises; an async job is also cancelled. If it
        does not finish, its row goes to que_dead_jobs as cancelled."""
        handle = self._handle
        return self._was_cancelled if handle is None else handle.cancelled

    @property
    def conn(self) -> AnyConnection:
        """The connection the job holds: the claiming one (autocommit unless a
        transaction was opened), or one lent by the engine."""
        return self._claimed().conn

    def connection(self) -> AnyConnection:
        """The job's connection; a job worked by a batched engine borrows one here."""
        return self._claimed().connection()

    def transaction(self) -> AnyConnection:
        """The job's connection inside a transaction, opened on first call.

        The job's own writes through it commit together with ``delete()``;
        ``error()`` and ``done()`` roll them back.
        """
        return self._claimed().transaction()

    @property
    def tx(self) -> AnyConnection:
        """The same as ``transaction()``: Go's ``Job.Tx()``."""
        return self.transaction()

    def delete(self, *, conn: object | None = None) -> None:
        """Delete the job's row; commits the job's transaction if it opened one.

        If the row was already gone (another worker finished the job after
        this one lost its lock), the job's transaction is rolled back instead,
        so its effects are recorded once.

        With ``conn`` (the application's connection, of any driver
        ``enqueue(conn=...)`` takes, inside its transaction: a Django
        ``transaction.atomic()`` block, a SQLAlchemy session), the row is
        deleted there and commits with the application's writes; the job
        keeps its lock until the work function returns, so commit before
        that. If the row was already gone, JobLostError is raised inside
        that transaction, so the application's writes roll back.
        """
        handle = self._claimed()
        if conn is None:
            handle.delete()
        else:
            handle.delete_on(conn)

    def error(self, message: str, *, retry_in: float | None = None) -> None:
        """Record a failure: error_count + 1, last_error, run_at = now() + backoff
        (or ``retry_in`` seconds). Rolls back the job's own transaction first."""
        self._claimed().error(message, retry_in=retry_in)

    def snooze(self, seconds: float) -> None:
        """Run the job again in ``seconds`` without counting a failure (a work
        function can raise or return ``que.Snooze(seconds)`` instead)."""
        self._claimed().snooze(Snooze(seconds).seconds)

    def discard(self, reason: str = "discarded") -> None:
        """Move the job to que_dead_jobs (outcome 'discarded'): it is not
        retried. Needs the que-pg extension (a work function can raise
        ``que.Discard(reason)`` instead)."""
        self._claimed().bury("discarded", reason, failed=False, last_error=None)

    def done(self) -> None:
        """Release the advisory lock and return the connection. Safe to call twice."""
        if self._handle is not None:
            self._handle.done()

    def __enter__(self) -> Job:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.done()


Release = Callable[["JobHandle"], None]
Lend = Callable[[], AnyConnection]


class JobHandle:
    """Finishes one claimed job. ``conn`` is the claiming connection (the
    client's ``lock_job``), or ``lend`` borrows one on demand (an engine,
    whose locker session holds the lock). ``release`` gives the job back.

    ``xact``: ``conn`` is in the transaction whose transaction-level lock
    holds the job (PgBouncer mode), with a savepoint taken after the claim.
    Everything the job writes on it is then one transaction with its
    outcome: delete() commits it, error() rolls back to the savepoint and
    commits the error, and done() without either rolls it all back. Ending
    that transaction is what releases the lock.
    """

    # An engine makes one per job: slots keep that cheap.
    __slots__ = (
        "_conn",
        "_lend",
        "_release",
        "backoff",
        "cancelled",
        "deleted",
        "finished",
        "in_tx",
        "job",
        "outcome_written",
        "problem",
        "stop",
        "synchronous_commit",
        "xact",
    )

    def __init__(
        self,
        job: Job,
        backoff: Backoff,
        release: Release,
        *,
        conn: AnyConnection | None = None,
        lend: Lend | None = None,
        problem: str | None = None,
        xact: bool = False,
        synchronous_commit: bool = True,
    ) -> None:
        self.job = job
        self.xact = xact
        # False: the job's own transaction commits without waiting for the WAL flush.
        self.synchronous_commit = synchronous_commit
        # A cancel request was seen; ``stop`` cancels an async job's task.
        self.cancelled = False
        self.stop: Callable[[], object] | None = None
        self.problem = problem
        self.backoff = backoff
        self.deleted = False
        self.outcome_written = False
        self.finished = False
        self.in_tx = False
        self._conn = conn
        self._lend = lend
        self._release = release
        job._handle = self

    @property
    def conn(self) -> AnyConnection:
        if self._conn is None:
            return self.connection()
        return self._conn

    def connection(self) -> AnyConnection:
        if self._conn is None:
            if self._lend is None or self.finished:
                raise QueError("this job holds no connection: its work has finished")
            self._conn = self._lend()
        return self._conn

    def transaction(self) -> AnyConnection:
        conn = self.connection()
        if not self.in_tx:
            if not self.xact:  # with xact, the claim's transaction is already open
                conn.set_autocommit(False)
                if not self.synchronous_commit:
                    conn.execute(sql.ASYNC_COMMIT)
            self.in_tx = True
        return conn

    def delete(self) -> None:
        conn = self.connection()
        cur = conn.execute(sql.DELETE_JOB, job_key(self.job), prepare=True)
        if self.xact or self.in_tx:
            if cur.rowcount == 0:
                logger.warning(
                    "job %s id=%s was already finished by another worker (this one lost its "
                    "lock); its transaction is rolled back",
                    self.job.type,
                    self.job.id,
                )
                conn.rollback()
            else:
                conn.commit()  # the job's writes with its delete (with xact: the lock's end)
            if self.xact:
                self.in_tx = False
            else:
                self._end_tx(conn)
        self.deleted = True

    def delete_on(self, caller: object) -> None:
        """Delete the row on the application's connection, in its transaction."""
        if self.in_tx:
            raise QueError(
                "this job has a transaction of its own (job.transaction()): "
                "call delete() without conn to commit it"
            )
        if self.deleted or self.outcome_written:
            raise QueError(f"job {self.job.id} was already finished")
        who = f"{type(self.job).__name__}.delete"
        with caller_statements(caller, who) as statements:
            rows = statements.fetch(sql.DELETE_JOB, job_key(self.job))
        if not rows:
            # Nothing more to write: the worker only unlocks.
            self.outcome_written = True
            raise JobLostError(self.job.id)
        self.deleted = True

    def error(self, message: str, *, retry_in: float | None = None) -> None:
        conn = self._end_job_tx()
        job = self.job
        if retry_in is None:
            delay = self.backoff.delay_for_failure(job.type, job.error_count + 1)
        else:
            delay = retry_in
        params = error_params(job, message, delay)
        # A dict_row cursor: the connection may come from a caller's pool with tuple rows.
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SET_JOB_ERROR, params, prepare=True)
            row = cur.fetchone()
        self._commit_claim(conn)
        if row is None:
            raise QueError(f"job {job.id} is no longer in que_jobs; its error was not recorded")
        job.error_count = row["error_count"]
        job.run_at = row["run_at"]
        job.last_error = message
        self.outcome_written = True

    def snooze(self, seconds: float) -> None:
        """Move run_at ``seconds`` ahead, no failure counted; ends the job's transaction."""
        conn = self._end_job_tx()
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SNOOZE_JOB, {**job_key(self.job), "delay": seconds})
            row = cur.fetchone()
        self._commit_claim(conn)
        if row is None:
            raise QueError(f"job {self.job.id} is no longer in que_jobs; it was not snoozed")
        self.job.run_at = row["run_at"]
        self.outcome_written = True

    def bury(self, dead_as: str, reason: str, *, failed: bool, last_error: str | None) -> None:
        """Move the row to que_dead_jobs in one statement; ends the job's transaction."""
        conn = self._end_job_tx()
        params = {
            **job_key(self.job),
            "failed": 1 if failed else 0,
            "last_error": None if last_error is None else storable(last_error),
            "outcome": dead_as,
            "reason": storable(reason),
        }
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.MOVE_JOB_TO_DEAD, params)
            row = cur.fetchone()
        self._commit_claim(conn)
        if row is None:
            raise QueError(f"job {self.job.id} is no longer in que_jobs; it was not moved")
        self.deleted = True

    def _end_job_tx(self) -> AnyConnection:
        """Roll the job's own writes back (keeping the lock) before a write of its outcome."""
        conn = self.connection()
        if self.xact:
            conn.execute(sql.ROLLBACK_TO_JOB_SAVEPOINT)
            self.in_tx = False
        elif self.in_tx:
            conn.rollback()
            self._end_tx(conn)
        return conn

    def _commit_claim(self, conn: AnyConnection) -> None:
        if self.xact:
            conn.commit()  # the outcome, and the lock's end

    def done(self) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            self._release(self)
        finally:
            job = self.job
            job._was_deleted, job._was_cancelled = self.deleted, self.cancelled
            job._handle = None

    def set_stop(self, stop: Callable[[], object]) -> None:
        """Where an async job's task is, to cancel it; at once if already asked."""
        self.stop = stop
        if self.cancelled:
            stop()

    def request_cancel(self) -> None:
        """A cancel request was seen: flag the job, and cancel it if it is async."""
        if not self.cancelled:
            self.cancelled = True
            if self.stop is not None:
                self.stop()

    def detach(self) -> AnyConnection | None:
        """Take the connection away from the job, for its release; None if it had none."""
        conn, self._conn = self._conn, None
        self.in_tx = False
        return conn

    def _end_tx(self, conn: AnyConnection) -> None:
        conn.set_autocommit(True)
        self.in_tx = False


def perform(
    job: Job,
    func: Callable[[Any], Any] | None,
    limit: float | None,
    watchdog: Watchdog | None,
    *,
    job_task: bool = False,
) -> Verdict:
    """Run a claimed job's work function, and say what is left to write: DELETE
    (it worked), FAIL with its last_error (it raised; an unknown type fails too),
    SNOOZE (``que.Snooze``), BURY (``que.Discard``), or UNLOCK (the job wrote its
    own outcome). What every worker and engine runs, so the lifecycle hooks
    (``que.hooks``) run here; retry limits and cancel requests are applied
    after (``_outcomes.settle``). Inside an OpenTelemetry span when the
    application has a tracer provider (``_tracing``). ``job_task``: the calling
    task runs this job alone (see ``run_work``)."""
    with job_span(job) as span:
        return _perform(job, func, limit, watchdog, span, job_task)


def _perform(
    job: Job,
    func: Callable[[Any], Any] | None,
    limit: float | None,
    watchdog: Watchdog | None,
    span: JobSpan,
    job_task: bool,
) -> Verdict:
    handle = job._claimed()
    _run_hooks("before", job)
    started = time.monotonic()
    try:
        if handle.problem is not None:
            raise QueError(undecodable_message(handle.problem))
        if func is None:
            raise UnknownJobTypeError(job.type)
        result = run_work(func, job, limit, watchdog, handle.set_stop, job_task)
        if isinstance(result, Snooze):
            raise result
        if handle.in_tx and not handle.deleted:
            handle.delete()  # commits the job's own writes with its delete
    except Snooze as snooze:
        log_outcome(job, started, f"snoozed for {snooze.seconds:g}s")
        _after(job, span, JobResult("snoozed", time.monotonic() - started))
        return Verdict(Outcome.SNOOZE, delay=snooze.seconds)
    except Discard as discard:
        log_outcome(job, started, f"discarded: {discard.reason}")
        _after(job, span, JobResult("discarded", time.monotonic() - started))
        return Verdict(
            Outcome.BURY, failure_message(discard), dead_as="discarded", reason=discard.reason
        )
    except (Exception, Cancelled) as exc:
        if isinstance(exc, Cancelled) and being_cancelled():
            raise  # the worker itself is being stopped: the job goes back untouched
        log_outcome(job, started, f"failed: {headline(exc)}", exc)
        elapsed = time.monotonic() - started
        _run_hooks("failure", job, exc)
        _after(job, span, JobResult("failed", elapsed, exc))
        if handle.outcome_written:
            return UNLOCK
        return Verdict(Outcome.FAIL, failure_message(exc))
    log_outcome(job, started, "done")
    _after(job, span, JobResult("done", time.monotonic() - started))
    if handle.deleted or handle.outcome_written:
        return UNLOCK
    return DELETE


def _after(job: Job, span: JobSpan, result: JobResult) -> None:
    """Tell the span how the job ended, then run the after_job hooks."""
    span.ended(result)
    _run_hooks("after", job, result)


def _run_hooks(kind: HookKind, job: Job, *args: Any) -> None:
    """Call each hook of ``kind``; one that raises is logged and the job goes on."""
    for hook in hooks.of(kind):
        try:
            returned = hook(job, *args)
            if inspect.isawaitable(returned):
                close = getattr(returned, "close", None)
                if close is not None:
                    close()  # never called: say so once, not as a warning later
                raise TypeError(
                    f"{kind} hook {hook!r} is async; the sync workers call plain functions only"
                )
        except Exception:
            hook_failed(kind, hook, job)


def finish(job: Job, verdict: Verdict) -> None:
    """Write a classic worker's verdict on the job's own connection."""
    handle = job._claimed()
    outcome = verdict.outcome
    if outcome is Outcome.DELETE:
        handle.delete()
    elif outcome is Outcome.FAIL:
        handle.error(verdict.message)
    elif outcome is Outcome.SNOOZE:
        handle.snooze(verdict.delay)
    elif outcome is Outcome.BURY:
        failed = verdict.counts_as_failure
        handle.bury(
            verdict.dead_as,
            verdict.reason,
            failed=failed,
            last_error=verdict.message if failed else None,
        )


def error_params(job: BaseJob, message: str, delay: float) -> dict[str, Any]:
    """SET_JOB_ERROR parameters: the job's key, its backoff and its message."""
    return {**job_key(job), "delay": float(delay), "last_error": storable(message)}

"""A backend of Django's Tasks framework that puts tasks in que_jobs.

``TASKS = {"default": {"BACKEND": "que.contrib.django.tasks.QueTaskBackend"}}``:
``my_task.enqueue(...)`` inserts a que job on Django's connection, inside the
current transaction (the task exists if and only if it commits), and
``manage.py que_worker`` runs it. A result's id is the job's id; its state is
read from que_jobs (READY, or RUNNING while a worker holds its lock),
que_dead_jobs (FAILED) and que_task_results (SUCCESSFUL, the return value,
the errors of failed attempts). See docs/integrations.md.

Mapping: job type = the task's module path; args = ``[{"args", "kwargs",
"backend", "enqueued_at"}]``; queue = the task's queue name, except the
framework's "default", which is que's default queue ''; priority = 100 -
the task's priority (the framework's -100..100, higher first, becomes que's
0..200, lower first; the framework's default 0 is que's default 100).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import connections
from django.utils import timezone
from django.utils.module_loading import import_string

from ... import sql
from ..._jobs import DEFAULT_PRIORITY
from ...job import Job
from ._tasks_api import load
from .client import get_client, que_settings

framework: Any = load()
_base = load(".base")
_exceptions = load(".exceptions")
BaseTaskBackend: Any = load(".backends.base").BaseTaskBackend

DEFAULT_QUEUE_NAME: str = framework.DEFAULT_TASK_QUEUE_NAME

_registered: dict[str, Any] = {}
_registered_lock = threading.Lock()


def que_priority(task_priority: int) -> int:
    """que's priority (lower first) of a task's (higher first).

    >>> que_priority(0), que_priority(100), que_priority(-100)
    (100, 0, 200)
    """
    return DEFAULT_PRIORITY - task_priority


def task_priority(priority: int) -> int:
    """The task priority of a que priority (the inverse of ``que_priority``)."""
    return DEFAULT_PRIORITY - priority


def que_queue(queue_name: str) -> str:
    """que's queue of a task queue name: "default" is que's default queue ''."""
    return "" if queue_name == DEFAULT_QUEUE_NAME else queue_name


def task_queue(queue: str) -> str:
    """The task queue name of a que queue (the inverse of ``que_queue``)."""
    return DEFAULT_QUEUE_NAME if queue == "" else queue


def registered_tasks() -> dict[str, Any]:
    """The tasks of que backends defined in this process so far, by module path."""
    with _registered_lock:
        return dict(_registered)


class QueTaskBackend(BaseTaskBackend):
    """Tasks as que jobs: deferred (``run_after``), prioritised, async or not,
    and their results readable from any process."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        #  OPTIONS = {"DATABASE": alias}: where the jobs go; QUE["DATABASE"] by default.
        self.database: str = self.options.get("DATABASE") or que_settings()["DATABASE"]

    def validate_task(self, task: Any) -> None:
        """The framework's checks, then remember the task for ``manage.py que_worker``."""
        super().validate_task(task)
        with _registered_lock:
            _registered.setdefault(task.module_path, task)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Insert the task's job in the current transaction of the backend's database."""
        self.validate_task(task)
        result = _base.TaskResult(
            task=task,
            id="",
            status=framework.TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,  # made JSON-ready here, or refused with a TypeError
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        job = get_client(self.database).enqueue(
            Job(
                type=task.module_path,
                args=[payload(result)],
                queue=que_queue(task.queue_name),
                priority=que_priority(task.priority),
                run_at=task.run_after,
            ),
            conn=connections[self.database],
        )
        object.__setattr__(result, "id", str(job.id))
        return result

    def get_result(self, result_id: str) -> Any:
        """The task's result, read from que_jobs, que_dead_jobs and que_task_results."""
        return read_result(self, result_id)


def payload(result: Any) -> dict[str, Any]:
    """The one argument of a task's job."""
    return {
        "args": result.args,
        "kwargs": result.kwargs,
        "backend": result.backend,
        "enqueued_at": result.enqueued_at.isoformat() if result.enqueued_at else None,
    }


def _row(cursor: Any, query: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    cursor.execute(query, params)
    found = cursor.fetchone()
    if found is None:
        return None
    return {column[0]: value for column, value in zip(cursor.description, found, strict=True)}


def _no_result(result_id: str, why: str) -> Exception:
    error: Exception = _exceptions.TaskResultDoesNotExist(f"no task result {result_id!r}: {why}")
    return error


def read_result(backend: QueTaskBackend, result_id: str) -> Any:
    """The result of job ``result_id``: que_jobs is read first, since a job
    leaves it in the same transaction that writes its success or its death."""
    from .models import TaskResultRecord

    try:
        job_id = int(result_id)
    except (TypeError, ValueError):
        raise _no_result(result_id, "a que task result id is a job id") from None
    status = framework.TaskResultStatus
    with connections[backend.database].cursor() as cursor:
        job = _row(cursor, sql.GET_JOB, {"job_id": job_id})
        record = TaskResultRecord.objects.using(backend.database).filter(job_id=job_id).first()
        dead = None
        if job is None and (record is None or record.status != status.SUCCESSFUL):
            dead = _row(cursor, sql.GET_DEAD_JOB, {"job_id": job_id})
    if job is not None:
        return result_from_job(job, record, status.RUNNING if job["locked"] else status.READY)
    if record is not None and record.status == status.SUCCESSFUL:
        return result_from_record(record, status.SUCCESSFUL)
    if dead is not None:
        return result_from_job(dead, record, status.FAILED, finished_at=dead["died_at"])
    if record is not None:  # removed from que without finishing (que jobs delete, purged)
        return result_from_record(record, status.FAILED)
    raise _no_result(result_id, "no such job, dead job or finished task")


def _task(path: str, result_id: object) -> Any:
    try:
        found = import_string(path)
    except ImportError:
        found = None
    if not hasattr(found, "get_backend") or not hasattr(found, "module_path"):
        raise _no_result(str(result_id), f"job type {path!r} is not a task")
    return found


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def result_from_job(
    job: Mapping[str, Any],
    record: Any,
    status: Any,
    finished_at: datetime | None = None,
) -> Any:
    """A TaskResult of a job still in que_jobs, or of a dead one."""
    import json

    args = json.loads(job["args"]) if isinstance(job["args"], str) else job["args"]
    body = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else {}
    task = _task(job["job_class"], job["job_id"]).using(
        priority=task_priority(job["priority"]),
        queue_name=task_queue(job["queue"]),
        backend=body.get("backend"),
    )
    return build_result(
        task,
        job["job_id"],
        status,
        args=body.get("args", []),
        kwargs=body.get("kwargs", {}),
        enqueued_at=parse_time(body.get("enqueued_at")),
        finished_at=finished_at,
        record=record,
    )


def result_from_record(record: Any, status: Any) -> Any:
    """A TaskResult of a task que no longer holds."""
    task = _task(record.task_path, record.job_id).using(
        priority=record.priority, queue_name=record.queue_name, backend=record.backend
    )
    return build_result(
        task,
        record.job_id,
        status,
        args=record.args,
        kwargs=record.kwargs,
        enqueued_at=record.enqueued_at,
        finished_at=record.finished_at,
        record=record,
        return_value=record.return_value,
    )


def build_result(
    task: Any,
    job_id: int,
    status: Any,
    *,
    args: Any,
    kwargs: Any,
    enqueued_at: datetime | None,
    finished_at: datetime | None,
    record: Any,
    return_value: Any = None,
) -> Any:
    result = _base.TaskResult(
        task=task,
        id=str(job_id),
        status=status,
        enqueued_at=enqueued_at,
        started_at=record.started_at if record else None,
        finished_at=finished_at,
        last_attempted_at=record.last_attempted_at if record else None,
        args=args,
        kwargs=kwargs,
        backend=task.backend,
        errors=[_base.TaskError(**error) for error in (record.errors if record else [])],
        worker_ids=list(record.worker_ids) if record else [],
    )
    object.__setattr__(result, "_return_value", return_value)
    return result

"""How ``manage.py que_worker`` runs a task of the Tasks framework.

A success writes the task's result and deletes its job in one transaction on
Django's connection; a failed attempt records its error and lets que retry
the job (or bury it once its attempts are spent), as with any other job.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import traceback
from collections.abc import Callable
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from ...job import Job
from . import tasks
from .models import TaskResultRecord

logger = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def task_work_map() -> dict[str, Callable[[Job], None]]:
    """A work function for each task of a que backend defined so far."""
    return {path: task_runner(task) for path, task in tasks.registered_tasks().items()}


def task_runner(task: Any) -> Callable[[Job], None]:
    """The work function of a task's jobs."""

    def run(job: Job) -> None:
        body = job.args[0]
        backend = tasks.framework.task_backends[body["backend"]]
        database = backend.database
        record = TaskResultRecord.objects.using(database).filter(job_id=job.id).first()
        now = timezone.now()
        fields: dict[str, Any] = {
            "task_path": task.module_path,
            "backend": backend.alias,
            "queue_name": tasks.task_queue(job.queue),
            "priority": tasks.task_priority(job.priority),
            "args": body["args"],
            "kwargs": body["kwargs"],
            "enqueued_at": tasks.parse_time(body.get("enqueued_at")),
            "started_at": record.started_at if record and record.started_at else now,
            "last_attempted_at": now,
            "errors": list(record.errors) if record else [],
            "worker_ids": [*(record.worker_ids if record else []), WORKER_ID],
        }
        bound = task.using(
            priority=fields["priority"], queue_name=fields["queue_name"], backend=backend.alias
        )
        running = tasks.build_result(
            bound,
            job.id or 0,
            tasks.framework.TaskResultStatus.RUNNING,
            args=fields["args"],
            kwargs=fields["kwargs"],
            enqueued_at=fields["enqueued_at"],
            finished_at=None,
            record=TaskResultRecord(**fields),
        )
        context = [tasks.framework.TaskContext(task_result=running)] if task.takes_context else []
        try:
            value = json.loads(json.dumps(task.call(*context, *fields["args"], **fields["kwargs"])))
        except Exception as exc:
            fields["errors"].append(
                {
                    "exception_class_path": f"{type(exc).__module__}.{type(exc).__qualname__}",
                    "traceback": "".join(
                        traceback.format_exception(type(exc), exc, exc.__traceback__)
                    ),
                }
            )
            _record_failure(database, job, fields)
            raise
        with transaction.atomic(using=database):
            TaskResultRecord.objects.using(database).update_or_create(
                job_id=job.id,
                defaults={
                    **fields,
                    "status": tasks.framework.TaskResultStatus.SUCCESSFUL,
                    "finished_at": timezone.now(),
                    "return_value": value,
                },
            )
            job.delete(conn=connections[database])

    return run


def _record_failure(database: str, job: Job, fields: dict[str, Any]) -> None:
    """Keep a failed attempt's error for the task's result; the job fails either way."""
    try:
        with transaction.atomic(using=database):
            TaskResultRecord.objects.using(database).update_or_create(
                job_id=job.id, defaults={**fields, "status": tasks.framework.TaskResultStatus.READY}
            )
    except Exception:
        logger.exception(
            "could not record the failed attempt of task job %s", job.id, extra={"job_id": job.id}
        )

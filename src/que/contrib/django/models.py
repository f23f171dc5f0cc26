"""What que keeps of a Django task beyond its que_jobs row.

que deletes a job when it succeeds, so a task's result (its return value,
when it ran, the errors of its attempts) lives in que_task_results, written
by the worker on Django's connection: a success's row commits with the job's
delete, in one transaction. Nothing here is read by Ruby or Go.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models


class TaskResultRecord(models.Model):
    """One task's attempts and outcome; the job's id is its result id."""

    job_id = models.BigIntegerField(primary_key=True)
    task_path = models.TextField()
    # SUCCESSFUL once it worked; READY while only failed attempts are recorded
    # (whether the job is still queued, running or dead is read from que's tables).
    status = models.CharField(max_length=10)
    backend = models.TextField()
    queue_name = models.TextField()
    priority = models.SmallIntegerField()
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    enqueued_at = models.DateTimeField(null=True)
    started_at = models.DateTimeField(null=True)
    last_attempted_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    return_value = models.JSONField(null=True)
    errors = models.JSONField(default=list)
    worker_ids = models.JSONField(default=list)

    class Meta:
        db_table = "que_task_results"
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=["finished_at"], name="que_task_results_finished")
        ]

    def __str__(self) -> str:
        return f"{self.task_path} #{self.job_id} {self.status}"

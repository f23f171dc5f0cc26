"""que: a PostgreSQL job queue that shares its table and locks with Ruby que 0.x and Go que-go."""

from __future__ import annotations

from ._extension_base import EXTENSION_VERSION, extension_sql
from ._manage_base import DeadJobRecord, JobRecord, Page
from ._schedule import Schedule, ScheduleStatus
from ._schema_base import CURRENT_VERSION, schema_sql
from ._unique import Unique
from .async_client import AsyncClient, prepare_statements_async
from .async_engine import AsyncBatchWorker
from .async_job_handle import AsyncJob
from .async_scheduler import AsyncScheduler
from .async_schema import (
    current_version_async,
    extension_version_async,
    install_notify_async,
    migrate_async,
    migrate_extension_async,
    uninstall_notify_async,
)
from .async_worker import AsyncWorker, AsyncWorkerPool
from .backoff import Backoff, default_backoff
from .client import Client, prepare_statements
from .connect import (
    Connector,
    connector_from_env,
    get_connector,
    get_connector_from_conn_str,
    get_connector_from_conninfo,
    get_connector_from_url,
)
from .engine import BatchWorker
from .errors import (
    DatabaseUnavailableError,
    Discard,
    InvalidJobError,
    JobCancelledError,
    JobLockedError,
    JobLostError,
    JobNotFoundError,
    JobTimeoutError,
    LockAttemptsError,
    MissingTypeError,
    QueError,
    SchemaVersionError,
    Snooze,
    UnknownJobTypeError,
)
from .health import QueueStats, TableHealth, queue_totals
from .hooks import JobResult, after_job, before_job, on_job_failure, remove_hook
from .job import JobStats
from .job_handle import Job
from .scheduler import Scheduler
from .schema import (
    current_version,
    extension_version,
    install_notify,
    migrate,
    migrate_extension,
    uninstall_notify,
)
from .worker import Worker, WorkerPool

__version__ = "0.1.0"

# Last, so that nothing rebinds the name: `que.job` is the decorator, while
# `from que.job import BaseJob` still reaches the module of job records.
from ._registry import (
    JobFunction,
    Registry,
    configure,
    current_job,
    job,
    registry,
)

__all__ = [
    "CURRENT_VERSION",
    "EXTENSION_VERSION",
    "AsyncBatchWorker",
    "AsyncClient",
    "AsyncJob",
    "AsyncScheduler",
    "AsyncWorker",
    "AsyncWorkerPool",
    "Backoff",
    "BatchWorker",
    "Client",
    "Connector",
    "DatabaseUnavailableError",
    "DeadJobRecord",
    "Discard",
    "InvalidJobError",
    "Job",
    "JobCancelledError",
    "JobFunction",
    "JobLockedError",
    "JobLostError",
    "JobNotFoundError",
    "JobRecord",
    "JobResult",
    "JobStats",
    "JobTimeoutError",
    "LockAttemptsError",
    "MissingTypeError",
    "Page",
    "QueError",
    "QueueStats",
    "Registry",
    "Schedule",
    "ScheduleStatus",
    "Scheduler",
    "SchemaVersionError",
    "Snooze",
    "TableHealth",
    "Unique",
    "UnknownJobTypeError",
    "Worker",
    "WorkerPool",
    "__version__",
    "after_job",
    "before_job",
    "configure",
    "connector_from_env",
    "current_job",
    "current_version",
    "current_version_async",
    "default_backoff",
    "extension_sql",
    "extension_version",
    "extension_version_async",
    "get_connector",
    "get_connector_from_conn_str",
    "get_connector_from_conninfo",
    "get_connector_from_url",
    "install_notify",
    "install_notify_async",
    "job",
    "migrate",
    "migrate_async",
    "migrate_extension",
    "migrate_extension_async",
    "on_job_failure",
    "prepare_statements",
    "prepare_statements_async",
    "queue_totals",
    "registry",
    "remove_hook",
    "schema_sql",
    "uninstall_notify",
    "uninstall_notify_async",
]

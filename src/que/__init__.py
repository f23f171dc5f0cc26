"""que: a PostgreSQL job queue that shares its table and locks with Ruby que 0.x and Go que-go.

The public names load on first use (PEP 562), so a worker process imports only
the face and the parts it runs: a sync worker never loads the asyncio modules,
nor the management, schedule or health code it does not call.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

# `que.job` is both a module (job records) and the decorator. The module is
# imported first so that no later first import of it rebinds the package's
# `job` attribute; `from que.job import BaseJob` still reaches the module.
from . import job as _job_records  # noqa: F401
from ._registry import (
    JobFunction,
    Registry,
    configure,
    current_job,
    job,
    registry,
)

if TYPE_CHECKING:
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

# Each lazily loaded public name, and the module it is defined in.
_LAZY: dict[str, str] = {
    "EXTENSION_VERSION": "_extension_base",
    "extension_sql": "_extension_base",
    "DeadJobRecord": "_manage_base",
    "JobRecord": "_manage_base",
    "Page": "_manage_base",
    "Schedule": "_schedule",
    "ScheduleStatus": "_schedule",
    "CURRENT_VERSION": "_schema_base",
    "schema_sql": "_schema_base",
    "Unique": "_unique",
    "AsyncClient": "async_client",
    "prepare_statements_async": "async_client",
    "AsyncBatchWorker": "async_engine",
    "AsyncJob": "async_job_handle",
    "AsyncScheduler": "async_scheduler",
    "current_version_async": "async_schema",
    "extension_version_async": "async_schema",
    "install_notify_async": "async_schema",
    "migrate_async": "async_schema",
    "migrate_extension_async": "async_schema",
    "uninstall_notify_async": "async_schema",
    "AsyncWorker": "async_worker",
    "AsyncWorkerPool": "async_worker",
    "Backoff": "backoff",
    "default_backoff": "backoff",
    "Client": "client",
    "prepare_statements": "client",
    "Connector": "connect",
    "connector_from_env": "connect",
    "get_connector": "connect",
    "get_connector_from_conn_str": "connect",
    "get_connector_from_conninfo": "connect",
    "get_connector_from_url": "connect",
    "BatchWorker": "engine",
    "DatabaseUnavailableError": "errors",
    "Discard": "errors",
    "InvalidJobError": "errors",
    "JobCancelledError": "errors",
    "JobLockedError": "errors",
    "JobLostError": "errors",
    "JobNotFoundError": "errors",
    "JobTimeoutError": "errors",
    "LockAttemptsError": "errors",
    "MissingTypeError": "errors",
    "QueError": "errors",
    "SchemaVersionError": "errors",
    "Snooze": "errors",
    "UnknownJobTypeError": "errors",
    "QueueStats": "health",
    "TableHealth": "health",
    "queue_totals": "health",
    "JobResult": "hooks",
    "after_job": "hooks",
    "before_job": "hooks",
    "on_job_failure": "hooks",
    "remove_hook": "hooks",
    "JobStats": "job",
    "Job": "job_handle",
    "Scheduler": "scheduler",
    "current_version": "schema",
    "extension_version": "schema",
    "install_notify": "schema",
    "migrate": "schema",
    "migrate_extension": "schema",
    "uninstall_notify": "schema",
    "Worker": "worker",
    "WorkerPool": "worker",
}


if not TYPE_CHECKING:  # a module __getattr__ would make every unknown name Any to them

    def __getattr__(name: str) -> Any:
        """Import the module behind a public name on first use, and keep the
        name bound. A submodule's name (``que.sql``, ``que.testing``) imports
        it, as ``import que`` used to import them all."""
        module = _LAZY.get(name)
        if module is not None:
            value = getattr(importlib.import_module(f".{module}", __name__), name)
        elif (
            name.isidentifier()
            and not name.startswith("__")
            and importlib.util.find_spec(f"{__name__}.{name}")
        ):
            value = importlib.import_module(f".{name}", __name__)
        else:
            raise AttributeError(f"module 'que' has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))


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

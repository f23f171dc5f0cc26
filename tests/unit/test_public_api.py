import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import que


def test_public_names_are_pinned() -> None:
    assert sorted(que.__all__) == sorted(
        [
            "CURRENT_VERSION",
            "EXTENSION_VERSION",
            "AsyncBatchWorker",
            "AsyncClient",
            "AsyncJob",
            "AsyncWorker",
            "AsyncWorkerPool",
            "after_job",
            "before_job",
            "on_job_failure",
            "remove_hook",
            "Backoff",
            "BatchWorker",
            "Client",
            "Connector",
            "DatabaseUnavailableError",
            "Discard",
            "InvalidJobError",
            "Job",
            "JobCancelledError",
            "JobFunction",
            "DeadJobRecord",
            "JobLockedError",
            "JobLostError",
            "JobNotFoundError",
            "JobRecord",
            "JobStats",
            "JobResult",
            "JobTimeoutError",
            "LockAttemptsError",
            "MissingTypeError",
            "Page",
            "QueError",
            "QueueStats",
            "Schedule",
            "ScheduleStatus",
            "Scheduler",
            "AsyncScheduler",
            "Registry",
            "SchemaVersionError",
            "Snooze",
            "TableHealth",
            "Unique",
            "UnknownJobTypeError",
            "Worker",
            "WorkerPool",
            "__version__",
            "registry",
            "job",
            "current_job",
            "configure",
            "connector_from_env",
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
            "migrate",
            "migrate_async",
            "migrate_extension",
            "migrate_extension_async",
            "prepare_statements",
            "prepare_statements_async",
            "queue_totals",
            "schema_sql",
            "uninstall_notify",
            "uninstall_notify_async",
        ]
    )
    for name in que.__all__:
        assert hasattr(que, name), name


def test_every_error_is_a_que_error() -> None:
    for name in (
        "DatabaseUnavailableError",
        "InvalidJobError",
        "JobLockedError",
        "JobLostError",
        "JobNotFoundError",
        "LockAttemptsError",
        "MissingTypeError",
        "SchemaVersionError",
        "UnknownJobTypeError",
    ):
        assert issubclass(getattr(que, name), que.QueError)
    assert issubclass(que.MissingTypeError, que.InvalidJobError)


def _fresh_interpreter(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing of que imported yet); its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


def test_a_sync_worker_loads_no_asyncio_face() -> None:
    loaded = _fresh_interpreter(
        "import sys, que; que.Client, que.BatchWorker, que.WorkerPool; "
        "print(sorted(m for m in sys.modules if m.startswith('que.')))"
    )
    assert "que.engine" in loaded and "que.worker" in loaded
    assert "async" not in loaded
    bare = _fresh_interpreter("import sys, que; print(sorted(sys.modules))")
    assert "'que.client'" not in bare and "'hashlib'" not in bare


def test_the_job_decorator_survives_the_job_module_loading_later() -> None:
    out = _fresh_interpreter(
        "import que, que.client, que.job; from que.job import BaseJob; "
        "print(callable(que.job) and not isinstance(que.job, type(que)), BaseJob.__name__)"
    )
    assert out == "True BaseJob"


def test_lazy_names_match_the_type_checking_imports() -> None:
    tree = ast.parse(Path(que.__file__).read_text())
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imported in node.body:
                assert isinstance(imported, ast.ImportFrom) and imported.module
                typed.update((alias.name, imported.module) for alias in imported.names)
    assert typed == que._LAZY
    eager = {"JobFunction", "Registry", "configure", "current_job", "job", "registry"}
    assert set(que.__all__) == set(typed) | eager | {"__version__"}
    for name, module in typed.items():
        assert getattr(que, name) is getattr(importlib.import_module(f"que.{module}"), name)


def test_an_unknown_name_is_a_clear_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'que' has no attribute 'Wroker'"):
        que.Wroker  # noqa: B018
    assert "WorkerPool" in dir(que)


def test_submodules_are_reached_as_attributes_as_before() -> None:
    out = _fresh_interpreter(
        "import que; print(que.sql.LOCK_JOB == que.sql.LOCK_JOB, que.testing.drain.__name__, "
        "getattr(que, 'no.such', None), getattr(que, 'nosuchmodule', None))"
    )
    assert out == "True drain None None"

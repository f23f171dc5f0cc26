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
            "JobNotFoundError",
            "JobRecord",
            "JobStats",
            "JobTimeoutError",
            "LockAttemptsError",
            "MissingTypeError",
            "Page",
            "QueError",
            "QueueStats",
            "Registry",
            "SchemaVersionError",
            "Snooze",
            "TableHealth",
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
        "JobNotFoundError",
        "LockAttemptsError",
        "MissingTypeError",
        "SchemaVersionError",
        "UnknownJobTypeError",
    ):
        assert issubclass(getattr(que, name), que.QueError)
    assert issubclass(que.MissingTypeError, que.InvalidJobError)

import pytest
from psycopg.conninfo import conninfo_to_dict

import que
from que.connect import connector_from_env, describe, redact


def test_get_connector_from_parts() -> None:
    connector = que.get_connector("db.internal", 6432, "app", "s3cret", "jobs")
    assert conninfo_to_dict(connector.conninfo) == {
        "host": "db.internal",
        "port": "6432",
        "user": "app",
        "password": "s3cret",
        "dbname": "jobs",
    }


def test_password_never_in_repr_or_description() -> None:
    connector = que.get_connector_from_url("postgresql://app:s3cret@db:5433/jobs")
    assert "s3cret" not in repr(connector)
    assert connector.describe() == "db:5433/jobs user=app"
    assert redact("FATAL for s3cret", connector.conninfo) == "FATAL for ***"


def test_conninfo_string() -> None:
    connector = que.get_connector_from_conn_str("host=h dbname=d")
    assert describe(connector.conninfo).startswith("h:")


@pytest.mark.parametrize("url", ["mysql://x/y", "db:5432/x"])
def test_url_must_be_postgresql(url: str) -> None:
    with pytest.raises(que.QueError, match="postgresql://"):
        que.get_connector_from_url(url)


def test_invalid_conninfo_is_a_clear_error() -> None:
    with pytest.raises(que.QueError, match="invalid connection string"):
        que.get_connector_from_conninfo("host")


def test_environment_order() -> None:
    env = {"DATABASE_URL": "postgresql:///b", "QUE_DATABASE_URL": "postgresql:///a"}
    found = connector_from_env(env)
    assert found is not None and found.conninfo == "postgresql:///a"
    found = connector_from_env({"DATABASE_URL": "postgresql:///b"})
    assert found is not None and found.conninfo == "postgresql:///b"
    found = connector_from_env({"PGHOST": "somewhere"})
    assert found is not None and found.conninfo == ""
    assert connector_from_env({}) is None

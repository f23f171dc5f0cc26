import re
import traceback

import pytest
from psycopg.conninfo import conninfo_to_dict

import que
from que.connect import connector_from_env, describe, redact

SECRET = "s3cret-pw"

# The SQLAlchemy spellings of a PostgreSQL URL, and the libpq scheme each becomes.
DRIVER_SCHEMES = [
    ("postgresql+psycopg", "postgresql"),
    ("postgresql+psycopg2", "postgresql"),
    ("postgresql+asyncpg", "postgresql"),
    ("postgresql+pg8000", "postgresql"),
    ("postgres", "postgres"),
    ("postgresql", "postgresql"),
]


def everything_said(exc: BaseException) -> str:
    """What a log line with the traceback of ``exc`` shows, chained exceptions included."""
    return "".join(traceback.format_exception(exc))


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


@pytest.mark.parametrize(("scheme", "libpq_scheme"), DRIVER_SCHEMES)
def test_sqlalchemy_urls_become_libpq_urls(scheme: str, libpq_scheme: str) -> None:
    url = f"{scheme}://app:{SECRET}@db:5433/jobs?sslmode=disable"
    expected = {
        "user": "app",
        "password": SECRET,
        "host": "db",
        "port": "5433",
        "dbname": "jobs",
        "sslmode": "disable",
    }
    for connector in (
        que.get_connector_from_url(url),
        que.get_connector_from_conninfo(url),
        que.Connector(url),
    ):
        assert connector.conninfo == f"{libpq_scheme}://app:{SECRET}@db:5433/jobs?sslmode=disable"
        assert conninfo_to_dict(connector.conninfo) == expected
        assert connector.describe() == "db:5433/jobs user=app"
    found = connector_from_env({"DATABASE_URL": url})
    assert found is not None and conninfo_to_dict(found.conninfo) == expected


def test_a_driver_url_keeps_its_percent_encoded_password() -> None:
    connector = que.get_connector_from_url("postgresql+psycopg://app:p%40ss%2Fw%3Frd%20x@db/jobs")
    assert conninfo_to_dict(connector.conninfo)["password"] == "p@ss/w?rd x"
    assert redact("said p@ss/w?rd x", connector.conninfo) == "said ***"


def test_a_url_scheme_is_case_insensitive() -> None:
    connector = que.get_connector_from_url("PostgreSQL+Psycopg://db/jobs")
    assert connector.conninfo == "postgresql://db/jobs"


def test_surrounding_whitespace_of_a_url_is_dropped() -> None:
    connector = que.get_connector_from_conninfo("  postgresql+psycopg://db/jobs\n")
    assert conninfo_to_dict(connector.conninfo)["dbname"] == "jobs"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        (f"http://app:{SECRET}@db/jobs", "'http'"),
        (f"mysql://app:{SECRET}@db/jobs", "'mysql'"),
        (f"postgresql+mysqldb://app:{SECRET}@db/jobs", "'postgresql+mysqldb'"),
        (f"jdbc:postgresql://db/jobs?password={SECRET}", "'jdbc:postgresql'"),
    ],
)
def test_other_schemes_are_refused_by_name(url: str, scheme: str) -> None:
    for make in (que.get_connector_from_url, que.get_connector_from_conninfo, que.Client):
        with pytest.raises(que.QueError, match="postgresql://") as caught:
            make(url)
        assert f"scheme {scheme}" in str(caught.value)
        assert SECRET not in everything_said(caught.value)
    with pytest.raises(que.QueError, match=re.escape(f"scheme {scheme}")):
        que.AsyncClient(url)


@pytest.mark.parametrize("url", ["mysql://x/y", "db:5432/x"])
def test_url_must_be_postgresql(url: str) -> None:
    with pytest.raises(que.QueError, match="postgresql://"):
        que.get_connector_from_url(url)


def test_a_url_without_a_scheme_is_not_repeated_back() -> None:
    with pytest.raises(que.QueError, match="no scheme") as caught:
        que.get_connector_from_url(f"app:{SECRET}@db/jobs")
    assert SECRET not in everything_said(caught.value)


def test_invalid_conninfo_is_a_clear_error() -> None:
    with pytest.raises(que.QueError, match="invalid connection string"):
        que.get_connector_from_conninfo("host")


# Malformed strings with a password in them, and what the error says instead of
# quoting the string. libpq's own message quotes the input in most of these.
MALFORMED = [
    (f"host=db password={SECRET}x y", 'without "="'),
    (f"password={SECRET} dbname='jobs", "quoted value is not closed"),
    (f"password={SECRET} colour=blue", "option libpq does not know"),
    (f"postgresql://app:{SECRET}@[::1/jobs", "IPv6"),
    (f"postgresql://app:{SECRET}@[]/jobs", "IPv6"),
    (f"postgresql://app:{SECRET}@[::1]x/jobs", "unexpected character"),
    (f"postgresql://app:{SECRET}%zz@db/jobs", "percent-encoding"),
    (f"postgresql://app:{SECRET}%00@db/jobs", "percent-encoding"),
    (f"postgresql+psycopg://app:{SECRET} x@db/jobs", "%20"),
    (f"postgresql://db/jobs?password={SECRET}&ssl=require", "query parameter libpq does not know"),
    (f"postgresql://db/jobs?password={SECRET}&x", "key=value"),
    (f"postgresql://db/jobs?password={SECRET}=x", "key=value"),
    # An unencoded "@" or "/" in a password moves the rest of it into the host,
    # port or database name, which a description would show.
    (f"postgresql://app:{SECRET}@x@db/jobs", "percent-encode"),
    (f"postgresql://app:1/{SECRET}@db/jobs", "percent-encode"),
    (f"postgresql://db?password=ab@{SECRET}", "percent-encode"),
    # A URL cut short before "@host" reads the password as a port.
    (f"postgresql://app:{SECRET}", "port"),
    (f"host=db port={SECRET}", "port"),
    (f"host=db password={SECRET}\x00", "NUL"),
    (f"host=db password={SECRET}\udc80", "UTF-8"),
    (f"postgresql://app:{SECRET}\udc80@db/jobs", "UTF-8"),
]


@pytest.mark.parametrize(("text", "says"), MALFORMED)
def test_malformed_strings_are_described_not_quoted(text: str, says: str) -> None:
    for make in (que.get_connector_from_conninfo, que.Connector):
        with pytest.raises(que.QueError, match="invalid connection string") as caught:
            make(text)
        assert says in str(caught.value)
        assert SECRET not in everything_said(caught.value)
    if "://" in text:
        with pytest.raises(que.QueError) as caught:
            que.get_connector_from_url(text)
        assert SECRET not in everything_said(caught.value)
    assert describe(text) == "<invalid connection string>"


def test_a_url_that_the_python_url_parser_rejects_is_a_que_error() -> None:
    # urllib.parse.urlsplit raises ValueError with the netloc in its message.
    text = f"postgresql://app:{SECRET}\uff03@db/jobs"
    connector = que.get_connector_from_url(text)
    assert SECRET not in repr(connector)


def test_an_environment_variable_error_names_the_variable() -> None:
    with pytest.raises(que.QueError, match=r"^QUE_DATABASE_URL: ") as caught:
        connector_from_env({"QUE_DATABASE_URL": f"http://app:{SECRET}@db/jobs"})
    assert SECRET not in everything_said(caught.value)


def test_environment_order() -> None:
    env = {"DATABASE_URL": "postgresql:///b", "QUE_DATABASE_URL": "postgresql:///a"}
    found = connector_from_env(env)
    assert found is not None and found.conninfo == "postgresql:///a"
    found = connector_from_env({"DATABASE_URL": "postgresql:///b"})
    assert found is not None and found.conninfo == "postgresql:///b"
    found = connector_from_env({"PGHOST": "somewhere"})
    assert found is not None and found.conninfo == ""
    assert connector_from_env({}) is None

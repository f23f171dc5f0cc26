"""Property: whatever string a password is embedded in, no message repeats it.

Each example puts a generated password into a password slot of a connection
string (URL user info, a ``password=`` query parameter, a conninfo
``password=`` value), written raw, percent-encoded or quoted, and surrounds it
with odd or malformed pieces. Every connector factory is then called on it: a
refusal must be a QueError whose traceback (chained exceptions included) does
not contain the password, and an accepted string must not show it in
``describe()`` or ``repr()``.
"""

from __future__ import annotations

import inspect
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import que
from que import connect

# Characters that mean something to a URL or conninfo parser, or to an encoder.
TRICKY = [*"@:/?#%[]&=,+' \"\\\t\n", "\x00", "\udc80", "\uff03", "é", "€"]

passwords = st.text(
    alphabet=st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8")),
    min_size=6,
    max_size=16,
)

SCHEMES = [
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
    "postgresql+pg8000",
    "POSTGRESQL+PSYCOPG",
    "http",
    "mysql",
    "postgresql+nodriver",
    "jdbc:postgresql",
]
USERS = ["app", "", "u%40x", "us er", "a:b"]
HOSTS = ["db", "", "127.0.0.1", "[::1]", "[::1", "[]", "[::1]z", "db1,db2", "%zz", "/tmp"]
PORTS = ["", ":5432", ":", ":x", ":5432,6543", ":99999"]
DATABASES = ["/jobs", "", "/", "/a%20b", "/j@bs", "/jobs%"]
QUERIES = ["", "?sslmode=disable", "?ssl=true", "?a", "?a=b=c", "?application_name=me@x", "&x=y"]
CONNINFO_PARTS = ["host=db", "dbname='jobs'", "port=5432", "port=x", "'", "x", "colour=blue", ""]
# Pieces put before or after the whole string.
JUNK = ["", " ", "\n", "=", "'", "://", "@", "%", "\\", "\x00", "\udc80", "x y"]

SOURCE_TEXT = inspect.getsource(connect)


@dataclass(frozen=True)
class Embedded:
    """A connection string and the password it was built around."""

    text: str
    password: str
    written: str  # the password as it appears in ``text``
    before: str
    after: str


def write_password(password: str, how: str) -> str:
    if how == "quoted":
        return "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if how == "open-quote":
        return "'" + password
    if how == "encoded":
        return quote(password, safe="")
    if how == "encoded-keep-slash":
        return quote(password)
    return password


@st.composite
def embedded_passwords(draw: st.DrawFn) -> Embedded:
    password = draw(passwords)
    shape = draw(st.sampled_from(["url-userinfo", "url-query", "conninfo"]))
    if shape == "conninfo":
        how = draw(st.sampled_from(["raw", "quoted", "open-quote"]))
        before = " ".join(draw(st.lists(st.sampled_from(CONNINFO_PARTS), max_size=3)))
        before += draw(st.sampled_from([" password=", " password = ", "\tpassword=  "]))
        after = " " + " ".join(draw(st.lists(st.sampled_from(CONNINFO_PARTS), max_size=3)))
    else:
        how = draw(st.sampled_from(["raw", "encoded", "encoded-keep-slash"]))
        scheme = draw(st.sampled_from(SCHEMES))
        host = draw(st.sampled_from(HOSTS)) + draw(st.sampled_from(PORTS))
        database = draw(st.sampled_from(DATABASES))
        query = draw(st.sampled_from(QUERIES))
        if shape == "url-userinfo":
            # The "@" that ends the user info stays: without it the password
            # slot is a port, and a bare number is a valid port.
            before = f"{scheme}://{draw(st.sampled_from(USERS))}:"
            after = f"@{host}{database}{query}"
        else:
            before = f"{scheme}://{host}{database}?password="
            after = draw(st.sampled_from(["", "&sslmode=disable", "&x", "&=", "#"]))
    written = write_password(password, how)
    cut = draw(st.integers(min_value=1 if shape == "url-userinfo" else 0, max_value=len(after)))
    before = draw(st.sampled_from(JUNK)) + before
    after = after[:cut] + draw(st.sampled_from(JUNK))
    return Embedded(before + written + after, password, written, before, after)


def secrets_of(case: Embedded) -> set[str]:
    """The password as generated, as written, and as a URL decoder reads what was written."""
    return {case.password, case.written, unquote(case.written)}


def distinct(case: Embedded) -> bool:
    """Whether each form of the password can only come from the password slot.

    A form that also occurs in the rest of the string, in the text of
    connect.py (its messages and the defaults a description shows), or that is
    made only of digits, commas and spaces (a port list, when a URL stops right after
    the password) would make the property fail on a message that is right.
    """
    for secret in secrets_of(case):
        if len(secret) < 6 or re.fullmatch(r"[\d,\s]*", secret, re.ASCII):
            return False
        if secret in case.before or secret in case.after or secret in SOURCE_TEXT:
            return False
    return True


def from_env_que(text: str) -> que.Connector | None:
    return que.connector_from_env({"QUE_DATABASE_URL": text})


def from_env_database(text: str) -> que.Connector | None:
    return que.connector_from_env({"DATABASE_URL": text})


FACTORIES: list[Callable[[str], que.Connector | None]] = [
    que.get_connector_from_conninfo,
    que.get_connector_from_conn_str,
    que.get_connector_from_url,
    from_env_que,
    from_env_database,
    que.Connector,
]


def messages(exc: BaseException | None) -> str:
    """The messages of ``exc`` and of the exceptions chained to it, as a traceback shows them.

    (The rest of a traceback is file names and source lines, which a
    generated password could match by chance.)
    """
    said = ""
    while exc is not None:
        said += "".join(traceback.format_exception_only(exc))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return said


def assert_never_shown(case: Embedded) -> None:
    for factory in FACTORIES:
        try:
            connector = factory(case.text)
        except Exception as exc:
            assert isinstance(exc, que.QueError), f"{factory.__name__} raised {exc!r}"
            said = messages(exc)
        else:
            assert connector is not None
            said = connector.describe() + "\n" + repr(connector) + "\n" + str(connector)
        for secret in secrets_of(case):
            assert secret not in said, f"{factory.__name__} showed the password in {said!r}"
    described = connect.describe(case.text)
    for secret in secrets_of(case):
        assert secret not in described


@settings(max_examples=300)
@given(embedded_passwords())
@example(Embedded("postgresql+psycopg://u:hunter2@db/x", "hunter2", "hunter2", "", ""))
@example(Embedded("http://u:hunter2@db/x", "hunter2", "hunter2", "", ""))
def test_no_message_shows_the_password(case: Embedded) -> None:
    assume(distinct(case))
    assert_never_shown(case)


@given(passwords, st.text(max_size=12), st.text(max_size=12))
def test_no_keyword_part_shows_the_password(password: str, host: str, extra: str) -> None:
    """get_connector quotes each part itself; odd hosts and passwords still stay hidden."""
    assume(not re.fullmatch(r"[\d,\s]*", password, re.ASCII))
    assume(password not in host and password not in extra and password not in SOURCE_TEXT)
    try:
        connector = que.get_connector(host=host, password=password, application_name=extra)
    except Exception as exc:
        said = messages(exc)
    else:
        said = connector.describe() + repr(connector)
    assert password not in said

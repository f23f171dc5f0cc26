from __future__ import annotations

import base64

import pytest

from que.web._security import Auth, auth_from_env, bind_problem, csrf_ok


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_auth_accepts_only_its_credentials() -> None:
    auth = Auth(token="tok", username="ops", password="pw")
    assert auth.allows("Bearer tok") and auth.allows(basic("ops", "pw"))
    assert auth.allows(basic("anyone", "tok"))  # the token as a browser's password
    for header in (None, "", "Bearer nope", basic("ops", "nope"), "Basic !!!", "Digest x"):
        assert not auth.allows(header)
    assert not Auth(username="ops", password="pw").allows("Bearer pw")


def test_auth_from_env_and_the_bind_rule() -> None:
    assert auth_from_env({}) is None
    assert auth_from_env({"QUE_WEB_TOKEN": "t"}) == Auth(token="t")
    with pytest.raises(ValueError, match="QUE_WEB_PASSWORD is set but QUE_WEB_USERNAME is not"):
        auth_from_env({"QUE_WEB_PASSWORD": "p"})
    assert bind_problem("127.0.0.1", None) is None
    assert bind_problem("0.0.0.0", Auth(token="t")) is None
    problem = bind_problem("0.0.0.0", None)
    assert problem is not None and "without authentication" in problem


def test_csrf_needs_both_halves_equal() -> None:
    assert csrf_ok("abc", "abc")
    assert not csrf_ok("abc", "abd") and not csrf_ok(None, "abc") and not csrf_ok("abc", None)
    assert not csrf_ok("", "")

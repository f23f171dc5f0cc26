"""Who may use the dashboard: the bind rule, authentication and CSRF tokens.

Pure functions, so the rules are tested without a server.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

CSRF_COOKIE = "que_csrf"
CSRF_FIELD = "csrf"

TOKEN_VARIABLE = "QUE_WEB_TOKEN"
USERNAME_VARIABLE = "QUE_WEB_USERNAME"
PASSWORD_VARIABLE = "QUE_WEB_PASSWORD"


@dataclass(frozen=True)
class Auth:
    """Credentials the dashboard asks for: a token (``Authorization: Bearer``,
    or as the password of basic auth with any user name), or a user name and
    password (basic auth, which browsers prompt for)."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if not self.token and not (self.username and self.password):
            raise ValueError("Auth needs a token, or both a username and a password")
        if bool(self.username) != bool(self.password):
            raise ValueError("Auth needs both a username and a password, not one of them")

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries these credentials."""
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer":
            return self.token is not None and _same(value, self.token)
        if scheme != "basic":
            return False
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        if self.token is not None and _same(password, self.token):
            return True
        return (
            self.username is not None
            and self.password is not None
            and _same(user, self.username) & _same(password, self.password)
        )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def auth_from_env(environ: Mapping[str, str]) -> Auth | None:
    """The credentials QUE_WEB_TOKEN or QUE_WEB_USERNAME and QUE_WEB_PASSWORD give;
    None when none is set. Half a pair is an error rather than no authentication."""
    token = environ.get(TOKEN_VARIABLE) or None
    username = environ.get(USERNAME_VARIABLE) or None
    password = environ.get(PASSWORD_VARIABLE) or None
    if token is None and username is None and password is None:
        return None
    if bool(username) != bool(password):
        given, missing = (
            (USERNAME_VARIABLE, PASSWORD_VARIABLE)
            if username
            else (PASSWORD_VARIABLE, USERNAME_VARIABLE)
        )
        raise ValueError(f"{given} is set but {missing} is not: set both, or neither")
    return Auth(token=token, username=username, password=password)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the dashboard on this machine.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.1.2.3", "")]
    [True, True, True, False, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_problem(host: str, auth: Auth | None) -> str | None:
    """Why the dashboard must not listen on ``host`` (None: it may)."""
    if auth is not None or is_loopback(host):
        return None
    return (
        f"que web on {host!r} would be reachable from other machines without "
        f"authentication: set {TOKEN_VARIABLE}, or {USERNAME_VARIABLE} and "
        f"{PASSWORD_VARIABLE}, or bind to 127.0.0.1"
    )


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    """The double-submit check: the form carries the value of the cookie, which a
    page of another site can neither read nor set."""
    if not cookie or not submitted:
        return False
    return _same(cookie, submitted)

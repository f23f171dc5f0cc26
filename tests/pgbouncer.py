"""A real PgBouncer in transaction pooling mode, in front of the test server.

:class:`PgBouncer` writes a ``pgbouncer.ini`` into a temporary directory,
starts ``pgbouncer`` in the foreground on a free port of 127.0.0.1 (never the
packaged service's 6432, and no Unix socket) and stops it again. Every
database name a client asks for is forwarded to the same name on the server,
so one PgBouncer serves each test's fresh database. Clients give no password
(``auth_type = any``); PgBouncer logs in to the server as the user of the
server URL, with its password if it has one. As with a PgBouncer left at its
defaults, a client that sends startup ``options`` is refused.

PgBouncer refuses to run as root: started by root, it switches to the owner
of the server's socket directory (who can reach the socket) or, for a server
reached over TCP, to ``nobody``. It reads its configuration before switching
and needs no writable directory: its log goes to a file this process opens.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg
import pytest
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

# Where the Debian package puts it; /usr/sbin is not on every user's PATH.
_DEBIAN_PATH = Path("/usr/sbin/pgbouncer")
_FALLBACK_USER = "nobody"
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def find_executable() -> str | None:
    """The path of the ``pgbouncer`` executable, or None when it is not installed."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    return str(_DEBIAN_PATH) if os.access(_DEBIAN_PATH, os.X_OK) else None


def required_executable() -> str:
    """The ``pgbouncer`` executable; without one, skip the test, or fail it under CI.

    CI sets $CI; there a missing PgBouncer is an error, so that the PgBouncer
    tests cannot pass by being skipped.
    """
    found = find_executable()
    if found is not None:
        return found
    reason = "pgbouncer is not installed (Debian and Ubuntu: apt-get install pgbouncer)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; $CI is set, so the PgBouncer tests must run", pytrace=False)
    pytest.skip(reason)


class PgBouncer:
    """One PgBouncer process forwarding every database of the server at ``server_url``.

    Use it as a context manager; :meth:`url` gives the conninfo of a database
    through it, :meth:`disconnect` closes its connections for one database.
    ``pool_size`` is how many server connections it opens at most for each
    database: as many transactions as that run at once through it.
    """

    def __init__(self, server_url: str, *, executable: str, pool_size: int = 40) -> None:
        self._server_url = server_url
        self._executable = executable
        self._pool_size = pool_size
        self._tmp = tempfile.TemporaryDirectory(prefix="que-test-pgbouncer-")
        self.directory = Path(self._tmp.name)
        self.log_path = self.directory / "pgbouncer.log"
        self.port = 0
        self._user = ""
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, dbname: str) -> str:
        """Conninfo of ``dbname`` on the server, through this PgBouncer."""
        return make_conninfo(host="127.0.0.1", port=self.port, dbname=dbname, user=self._user)

    def disconnect(self, dbname: str) -> None:
        """Close every client and server connection PgBouncer has for ``dbname``.

        Server connections it keeps idle would otherwise stay open (holding
        any session lock left on them) until the database is dropped.
        """
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as console:
            # KILL pauses the database for new clients too; RESUME lifts that.
            for command in ("KILL {}", "RESUME {}"):
                console.execute(pgsql.SQL(command).format(pgsql.Identifier(dbname)))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self) -> None:
        with psycopg.connect(self._server_url) as conn:
            host, port = conn.info.host, conn.info.port
            self._user, password = conn.info.user, conn.info.password
        server = {"host": host, "port": str(port), "user": self._user}
        if password:
            server["password"] = password
        self.port = _free_port()
        config = self.directory / "pgbouncer.ini"
        config.write_text(self._config(server))
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [self._executable, *_switch_user(host), str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_listening()

    def stop(self) -> None:
        """Shut PgBouncer down (SIGTERM: it closes every connection) and remove its files."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> PgBouncer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _config(self, server: dict[str, str]) -> str:
        forward = " ".join(f"{key}={_quoted(value)}" for key, value in server.items())
        return f"""\
[databases]
* = {forward}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
pool_mode = transaction
auth_type = any
admin_users = {server["user"]}
default_pool_size = {self._pool_size}
max_client_conn = 500
"""

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"pgbouncer exited with {self._process.returncode}:\n{self.log()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"pgbouncer did not listen on port {self.port} "
                        f"within {_START_TIMEOUT}s:\n{self.log()}"
                    ) from None
                time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _switch_user(server_host: str) -> list[str]:
    """``-u user`` when running as root, which PgBouncer refuses; otherwise nothing."""
    if os.geteuid() != 0:
        return []
    user = _FALLBACK_USER
    if server_host.startswith("/"):
        owner = pwd.getpwuid(Path(server_host).stat().st_uid).pw_name
        if owner != "root":
            user = owner
    return ["-u", user]


def _quoted(value: str) -> str:
    if "'" in value:
        raise ValueError(f"a quote in a PgBouncer connection setting is not supported: {value!r}")
    return f"'{value}'"

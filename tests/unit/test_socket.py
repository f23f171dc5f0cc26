import fcntl
import os
import resource
import socket
from collections.abc import Iterator

import pytest

from que._socket import socket_quiet


class Session:
    """The one thing socket_quiet asks of a connection: its descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, server = socket.socketpair()
    yield ours, server
    ours.close()
    server.close()


def test_an_idle_socket_is_quiet_until_the_other_side_writes_or_closes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, server = pair
    assert socket_quiet(Session(ours.fileno()))
    server.send(b"E")
    assert not socket_quiet(Session(ours.fileno()))
    ours.recv(1)
    assert socket_quiet(Session(ours.fileno()))
    server.close()
    assert not socket_quiet(Session(ours.fileno()))


def test_a_descriptor_past_1023_is_read_too(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, server = pair
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1100 if hard == resource.RLIM_INFINITY else min(hard, 1100)
    if wanted <= 1024:
        pytest.skip(f"this process may open only {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        # The lowest free descriptor from 1024 up: nothing open is replaced.
        high = fcntl.fcntl(ours.fileno(), fcntl.F_DUPFD, 1024)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert high >= 1024
        assert socket_quiet(Session(high))
        server.send(b"E")
        assert not socket_quiet(Session(high))
    finally:
        os.close(high)


def test_a_closed_connection_is_not_quiet() -> None:
    class Closed:
        def fileno(self) -> int:
            raise OSError("the connection is closed")

    assert not socket_quiet(Closed())

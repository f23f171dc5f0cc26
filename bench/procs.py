"""The harness's side of its child processes (see bench/child.py)."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from bench.systems.base import System

ROOT = Path(__file__).resolve().parent.parent


class ChildError(RuntimeError):
    """A child process failed, said something unexpected, or took too long."""


class Child:
    """One ``python -m bench.child`` process, its messages and its progress count."""

    def __init__(self, system: System, url: str, role: list[str], log: Path) -> None:
        self.log = log
        self._log_file: IO[bytes] = log.open("ab")
        command = [
            sys.executable,
            "-m",
            "bench.child",
            "--system",
            system.name,
            "--settings",
            json.dumps(system.settings),
            "--url",
            url,
            *role,
        ]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
        )
        self.progress = 0
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if message["event"] == "progress":
                self.progress = int(message["n"])
            else:
                self._messages.put(message)
        self._messages.put({"event": "eof"})

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next message, which must be ``event``; raises ChildError otherwise."""
        try:
            message = self._messages.get(timeout=timeout)
        except queue.Empty:
            raise ChildError(f"no {event!r} within {timeout:.0f}s{self._tail()}") from None
        if message["event"] == "error":
            raise ChildError(f"{message['error']}{self._tail()}")
        if message["event"] == "eof":
            code = self.proc.wait()
            raise ChildError(f"exited with code {code} before {event!r}{self._tail()}")
        if message["event"] != event:
            raise ChildError(f"expected {event!r}, got {message['event']!r}")
        return message

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def close(self, timeout: float = 10.0) -> None:
        """Close stdin (which stops a worker), wait, and kill the process if it lingers."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout)
        self._log_file.close()

    def _tail(self, lines: int = 12) -> str:
        self._log_file.flush()
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "" if not text else "\n  log: " + "\n  log: ".join(text[-lines:])


class WorkerGroup:
    """The worker processes of one run: start together, report progress, stop together."""

    def __init__(
        self, system: System, url: str, logs: Path, label: str, io_wait: float = 0.0
    ) -> None:
        role = ["worker", "--io-wait", repr(io_wait)] if io_wait else ["worker"]
        self.children = [
            Child(system, url, role, logs / f"{label}-worker{n}.log")
            for n in range(system.processes)
        ]

    def wait_ready(self, timeout: float = 120.0) -> None:
        for child in self.children:
            child.expect("ready", timeout)

    def go(self) -> float:
        started = time.perf_counter()
        for child in self.children:
            child.send("go")
        return started

    @property
    def progress(self) -> int:
        return sum(child.progress for child in self.children)

    def stop(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        for child in self.children:
            child.send("stop")
        return [child.expect("done", timeout) for child in self.children]

    def close(self) -> None:
        for child in self.children:
            child.close()


def run_child(
    system: System, url: str, role: list[str], log: Path, event: str, timeout: float
) -> dict[str, Any]:
    """Start a child, wait for its one result message, and reap it."""
    child = Child(system, url, role, log)
    try:
        return child.expect(event, timeout)
    finally:
        child.close()

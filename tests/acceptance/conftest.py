"""Running the real ``que`` command as a subprocess, in the foreground or the background."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

import que
from que import embedded

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("que")
QUE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "que.cli"]

# Variables that would point the command at another database or queue.
_CLEARED = (
    "QUE_DATABASE_URL",
    "DATABASE_URL",
    "QUE_QUEUE",
    "QUE_WAKE_INTERVAL",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSERVICE",
    "PGHOSTADDR",
)
DEADLINE = 30.0


def wait_for(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Background:
    """A ``que`` command running in the background, its output going to files."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"que did not exit within {timeout}s; stderr:\n{self.stderr()}")

    def wait_for_log(self, text: str, timeout: float = DEADLINE) -> None:
        def logged() -> bool:
            if self.process.poll() is not None and text not in self.stderr():
                pytest.fail(f"que exited with {self.process.returncode}; stderr:\n{self.stderr()}")
            return text in self.stderr()

        wait_for(logged, f"{text!r} in the log", timeout)


@dataclass
class Cli:
    """Runs ``que`` with a clean environment plus ``env``, from the repository root."""

    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    started: list[Background] = field(default_factory=list)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        env.update(self.env)
        env.update(extra or {})
        return env

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*QUE, *args],
            cwd=REPO,
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run ``que`` expecting exit code 0; its stdout."""
        done = self(*args, env=env)
        assert done.returncode == 0, f"que {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    def background(self, *args: str, env: dict[str, str] | None = None) -> Background:
        number = len(self.started)
        out = self.tmp / f"que-{number}.out"
        err = self.tmp / f"que-{number}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [*QUE, *args], cwd=REPO, env=self.environment(env), stdout=stdout, stderr=stderr
            )
        started = Background(process, out, err)
        self.started.append(started)
        return started

    def kill_all(self) -> None:
        for running in self.started:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGKILL)
                running.process.wait()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """The ``que`` command; its embedded data directory is private to the test and
    whatever it started is stopped afterwards."""
    data_dir = tmp_path / "embedded"
    runner = Cli(tmp_path, {"QUE_EMBEDDED_DIR": str(data_dir)})
    try:
        yield runner
    finally:
        runner.kill_all()
        if embedded.status(data_dir).running:
            embedded.stop(data_dir)


@pytest.fixture
def gate_dir(tmp_path: Path) -> Path:
    """Where the test jobs leave their markers; creating ``open`` in it opens the gate."""
    folder = tmp_path / "jobs"
    folder.mkdir()
    return folder


def markers(folder: Path, what: str) -> dict[int, int]:
    """Job id -> pid of the process that left a ``what`` marker for it."""
    found = {}
    for path in folder.glob(f"{what}-*"):
        _, job_id, pid = path.name.split("-")
        found[int(job_id)] = int(pid)
    return found


def job_count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert row is not None
    return int(row[0])


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def add_jobs(url: str, job_type: str, folder: Path, count: int = 1) -> list[int]:
    """Enqueue ``count`` test jobs with the library (the CLI's enqueue has its own tests)."""
    with que.Client(url, max_connections=1) as client:
        jobs = client.enqueue_many(
            [que.Job(type=job_type, args=[str(folder)]) for _ in range(count)]
        )
    return [job.id for job in jobs if job.id is not None]

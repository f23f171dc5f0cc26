"""A command uses only a database it was told about; the embedded one only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Cli
from .test_bad_input import assert_one_line_error

DATA_COMMANDS = [
    ["migrate"],
    ["version"],
    ["stats"],
    ["enqueue", "SendWelcome", "[1]"],
    ["worker", "tests.acceptance.apps:work_map"],
]


@pytest.mark.parametrize("command", DATA_COMMANDS, ids=lambda c: c[0])
def test_a_data_command_without_a_database_refuses_and_starts_nothing(
    cli: Cli, tmp_path: Path, command: list[str]
) -> None:
    done = cli(*command, timeout=20)
    line = assert_one_line_error(done, "no database")
    assert done.returncode == 2
    for setting in ("--database-url", "QUE_DATABASE_URL", "DATABASE_URL", "PGHOST", "--embedded"):
        assert setting in line, f"{setting} not named in {line!r}"
    assert done.stdout == ""
    assert not (tmp_path / "embedded").exists(), "an embedded server was created"


@pytest.mark.parametrize("name", ["QUE_DATABASE_URL", "DATABASE_URL"])
def test_a_blank_url_variable_is_refused_rather_than_ignored(
    cli: Cli, tmp_path: Path, name: str
) -> None:
    done = cli("stats", env={name: "  "})
    assert_one_line_error(done, f"{name} is set but blank")
    assert done.returncode == 2
    assert not (tmp_path / "embedded").exists()

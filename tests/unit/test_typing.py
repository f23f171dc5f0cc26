"""mypy catches wrong arguments to a decorated job's enqueue."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

CHECKED = Path(__file__).parent.parent / "typing" / "enqueue_checked.py"


def test_mypy_reports_exactly_the_marked_lines(tmp_path: Path) -> None:
    expected = {
        number: line.split("# E: ", 1)[1].strip()
        for number, line in enumerate(CHECKED.read_text().splitlines(), start=1)
        if "# E: " in line
    }
    assert len(expected) == 7
    # In a process of its own: mypy raises the interpreter's recursion limit,
    # which would change what other tests in this process can decode.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            str(CHECKED),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out, err = done.stdout, done.stderr
    errors: dict[int, str] = {}
    for line in out.splitlines():
        match = re.match(r".*enqueue_checked\.py:(\d+): error: (.*)", line)
        if match:
            errors[int(match.group(1))] = errors.get(int(match.group(1)), "") + match.group(2)
    assert set(errors) == set(expected), out + err
    for number, text in expected.items():
        assert text in errors[number], f"line {number}: {errors[number]!r} lacks {text!r}"

"""What `que worker` tells an operator: where an APP failed to import."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Cli
from .test_bad_input import assert_one_line_error


def write_app(root: Path, files: dict[str, str]) -> dict[str, Path]:
    """A package ``myapp`` under ``root``; returns the path of each file written."""
    package = root / "myapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    paths = {}
    for name, source in files.items():
        paths[name] = package / f"{name}.py"
        paths[name].write_text(source)
    return paths


IMPORT_FAILURES = {
    "raises": (
        {"jobs": '"""Fails on import."""\n\nimport os\n\nraise RuntimeError("boom")\n'},
        "RuntimeError: boom",
        [("jobs", 5)],
    ),
    "syntax error": (
        {"jobs": "import os\n\n\ndef broken(:\n    pass\n"},
        "SyntaxError: invalid syntax",
        [("jobs", 4)],
    ),
    "fails in a module it imports": (
        {
            "jobs": "import os\n\nfrom myapp import helpers\n\nwork_map = {}\n",
            "helpers": 'SETTING = 1\nraise ValueError("bad setting")\n',
        },
        "ValueError: bad setting",
        [("helpers", 2), ("jobs", 3)],
    ),
    "syntax error in a module it imports": (
        {"jobs": "from myapp import helpers\n", "helpers": "x = (\n"},
        "SyntaxError:",
        [("helpers", 1), ("jobs", 1)],
    ),
    "a missing dependency": (
        {"jobs": "import os\nimport no_such_dependency_xyz\n"},
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'",
        [("jobs", 2)],
    ),
}


@pytest.mark.parametrize("case", list(IMPORT_FAILURES))
def test_an_app_failing_on_import_names_the_file_and_line(
    cli: Cli, tmp_path: Path, case: str
) -> None:
    files, error, places = IMPORT_FAILURES[case]
    paths = write_app(tmp_path / "app", files)
    done = cli("worker", "myapp.jobs:work_map", env={"PYTHONPATH": str(tmp_path / "app")})
    line = assert_one_line_error(done, "importing module 'myapp.jobs' failed", error)
    assert done.returncode == 1
    for name, number in places:
        assert f"{paths[name]}:{number}" in line, f"{name}.py:{number} not in {line!r}"

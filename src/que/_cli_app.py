"""Loading the work map that ``que worker APP`` names, with one-line errors that
tell a bad APP (exit code 2) from an application failing on import (exit code 1)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ._cli_support import CliError, UsageError, one_line
from ._work import check_work_map

WorkMap = dict[str, Callable[..., Any]]


def load_work_map(app: str) -> WorkMap:
    """The work map named by ``module:attribute``; a callable attribute is called first.

    The current directory is put on sys.path first, as ``python -m`` would.
    """
    module_name, sep, attribute = app.partition(":")
    if not sep or not module_name.strip() or not attribute.strip():
        raise UsageError(f"APP must be module:attribute, such as myapp.jobs:work_map, not {app!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise UsageError(
                f"cannot import module {module_name!r} of APP {app!r}: no module named "
                f"{missing!r} (searched the current directory and PYTHONPATH)"
            ) from exc
        raise CliError(f"importing module {module_name!r} failed: {_describe(exc)}") from exc
    except Exception as exc:
        raise CliError(f"importing module {module_name!r} failed: {_describe(exc)}") from exc
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(found, Mapping) and callable(found):
        try:
            found = found()
        except Exception as exc:
            raise CliError(f"calling {app} to get the work map failed: {_describe(exc)}") from exc
    if not isinstance(found, Mapping):
        raise UsageError(
            f"{app} is a {type(found).__name__}, not a work map "
            "(a dict of job type to function, or a function returning one)"
        )
    try:
        work_map = check_work_map(found, worker="que worker", allow_async=True)
    except TypeError as exc:
        raise UsageError(f"{app} is not a valid work map: {one_line(exc)}") from exc
    if not work_map:
        raise UsageError(f"{app} is an empty work map: it names no job types")
    return work_map


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc)}"

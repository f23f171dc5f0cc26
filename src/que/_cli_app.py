"""Loading the work map that ``que worker APP`` names, and the schedules that
``--schedules`` names, with one-line errors that tell a bad name (exit code
2) from an application failing on import (exit code 1)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from ._cli_support import CliError, UsageError, one_line
from ._registry import registry
from ._schedule import Schedule, check_schedules
from ._work import check_work_map

WorkMap = dict[str, Callable[..., Any]]


def load_work_map(app: str) -> WorkMap:
    """The work map APP names: ``module:attribute`` (a work map, or a callable
    returning one), or ``module`` (every ``@que.job`` registered once it, and
    for a package each of its submodules, is imported).

    The current directory is put on sys.path first, as ``python -m`` would.
    """
    module_name, sep, attribute = app.partition(":")
    if not module_name.strip() or (sep and not attribute.strip()):
        raise UsageError(
            "APP must be module:attribute, such as myapp.jobs:work_map, or a module "
            f"of @que.job functions, such as myapp.jobs, not {app!r}"
        )
    if not sep:
        return _registered_jobs(_import(module_name, "APP", app), app)
    found = load_object(app, "APP", "the work map")
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


def load_schedules(spec: str) -> list[Schedule]:
    """The schedules named by ``module:attribute``: a list of que.Schedule, or a
    function returning one."""
    found = load_object(spec, "--schedules", "the schedules")
    if isinstance(found, Schedule) or not isinstance(found, Iterable):
        found = [found]
    try:
        schedules = check_schedules(found)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{spec} are not valid schedules: {one_line(exc)}") from exc
    if not schedules:
        raise UsageError(f"{spec} is empty: it declares no schedules")
    return schedules


def load_object(app: str, name: str, what: str) -> Any:
    """What ``module:attribute`` names, called first when it is a function
    (``name`` is the option that gave it, ``what`` what it should be)."""
    module_name, sep, attribute = app.partition(":")
    if not sep or not module_name.strip() or not attribute.strip():
        raise UsageError(
            f"{name} must be module:attribute, such as myapp.jobs:schedules, not {app!r}"
        )
    found: Any = _import(module_name, name, app)
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(found, Mapping) and callable(found):
        try:
            found = found()
        except Exception as exc:
            raise CliError(f"calling {app} to get {what} failed: {_describe(exc)}") from exc
    return found


def _import(module_name: str, name: str, app: str) -> ModuleType:
    """Import a module of the application, the current directory first on sys.path."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise UsageError(
                f"cannot import module {module_name!r} of {name} {app!r}: no module named "
                f"{missing!r} (searched the current directory and PYTHONPATH)"
            ) from exc
        raise CliError(f"importing module {module_name!r} failed: {_describe(exc)}") from exc
    except Exception as exc:
        raise CliError(f"importing module {module_name!r} failed: {_describe(exc)}") from exc


def _registered_jobs(module: ModuleType, app: str) -> WorkMap:
    """The registered jobs defined in ``module`` or, for a package, one of its
    submodules, once all are imported (in name order, so every process finds
    the same). Jobs a library they import registers are not the app's to work."""
    paths = getattr(module, "__path__", None)
    if paths is not None:
        names = sorted(info.name for info in pkgutil.walk_packages(paths, module.__name__ + "."))
        for name in names:
            _import(name, "APP", app)
    work_map = {
        name: runner
        for name, runner in registry.work_map().items()
        if _within(registry.jobs[name].func, module.__name__)
    }
    if not work_map:
        raise UsageError(
            f"module {app!r} registers no jobs (jobs of modules it imports from elsewhere "
            "do not count): decorate its job functions with @que.job, or name a work map "
            "as module:attribute"
        )
    return work_map


def _within(func: object, package: str) -> bool:
    """Whether ``func`` is defined in the module ``package`` or below it
    (``myapp.jobs`` holds ``myapp.jobs.mail``, not ``myapp.jobs_extra``)."""
    module = getattr(func, "__module__", None) or ""
    return module == package or module.startswith(package + ".")


def _describe(exc: BaseException) -> str:
    """The exception in one line, with the place in the code where it happened."""
    # A SyntaxError's str() names the file without its folder; its place says more.
    message = exc.msg if isinstance(exc, SyntaxError) and exc.msg else one_line(exc)
    where = origin(exc)
    return f"{type(exc).__name__}: {message}" + (f" ({where})" if where else "")


def origin(exc: BaseException) -> str:
    """Where ``exc`` was raised (file:line), and the first line of the app's code
    that led there when that is another place; '' when the traceback names none.

    The frames of this module and of the import machinery are left out: an
    operator wants the line of the app to fix, not the line that imported it.
    """
    places = [
        (frame.filename, frame.lineno)
        for frame in traceback.extract_tb(exc.__traceback__)
        if not _is_machinery(frame.filename)
    ]
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        places.append((exc.filename, exc.lineno))  # the file that failed to compile
    if not places:
        return ""
    raised, entry = places[-1], places[0]
    text = f"at {raised[0]}:{raised[1]}"
    return text if entry == raised else f"{text}, reached from {entry[0]}:{entry[1]}"


_IMPORTLIB_DIR = os.path.dirname(importlib.__file__ or "")


def _is_machinery(filename: str) -> bool:
    return (
        filename == __file__
        or filename.startswith("<frozen ")
        or os.path.dirname(filename) == _IMPORTLIB_DIR
    )

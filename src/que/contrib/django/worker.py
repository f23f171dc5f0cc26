"""The work map of ``manage.py que_worker``: the ``@que.job`` functions of
every installed app's ``jobs`` module and the tasks (Django's Tasks framework,
on a que backend) of its ``tasks`` and ``jobs`` modules, each run between
``close_old_connections()`` calls, as Django does around a request (a
worker thread's connection may have gone stale or exceeded CONN_MAX_AGE)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import django
from django.apps import apps
from django.db import close_old_connections
from django.utils.module_loading import autodiscover_modules

from ..._registry import registry
from ..._work import is_async_callable
from . import _tasks_api


def work_map() -> dict[str, Callable[[Any], Any]]:
    """Registered jobs and tasks of the installed apps (their ``jobs`` and
    ``tasks`` modules imported)."""
    if not apps.ready:
        django.setup()  # a worker process started without manage.py
    autodiscover_modules("jobs")
    found = dict(registry.work_map())
    if _tasks_api.available():
        from .task_worker import task_work_map

        autodiscover_modules("tasks")
        for name, func in task_work_map().items():
            if name in found:
                raise ValueError(f"{name!r} is both a @que.job function and a task")
            found[name] = func
    return {name: with_django_connections(func) for name, func in found.items()}


def with_django_connections(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``func`` between two ``close_old_connections()``; async functions as they are
    (Django runs their ORM calls in its own threads)."""
    if is_async_callable(func):
        return func

    @functools.wraps(func)
    def run(job: Any) -> Any:
        close_old_connections()
        try:
            return func(job)
        finally:
            close_old_connections()

    return run

"""Django's Tasks framework, wherever it is installed: ``django.tasks`` (Django
6 and later) or its backport ``django_tasks`` (older Django). Both share one
API; only the names they have in common are used."""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from types import ModuleType


def _package_name() -> str | None:
    for name in ("django.tasks", "django_tasks"):
        try:
            if find_spec(name) is not None:
                return name
        except ModuleNotFoundError:  # django itself is missing
            return None
    return None


PACKAGE = _package_name()


def available() -> bool:
    """Whether the Tasks framework (built in, or its backport) is installed."""
    return PACKAGE is not None


def load(suffix: str = "") -> ModuleType:
    """A module of the Tasks framework: ``load(".base")`` is ``django.tasks.base``."""
    if PACKAGE is None:
        raise ImportError(
            "the Tasks framework is missing: it is built into Django 6; "
            "on older Django, pip install django-tasks"
        )
    return importlib.import_module(PACKAGE + suffix)

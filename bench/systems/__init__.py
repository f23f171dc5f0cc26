"""The benchmarked systems: one module each, found by looking in this package.

Adding a system is adding one module here with one ``System`` subclass;
its ``rank`` orders it in tables (lower first).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from bench.systems.base import System


def system_classes() -> dict[str, type[System]]:
    """Every System subclass defined in this package, by name, in table order."""
    found: list[type[System]] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, System)
                and value is not System
                and value.__module__ == module.__name__
            ):
                found.append(value)
    found.sort(key=lambda cls: (cls.rank, cls.name))
    return {cls.name: cls for cls in found}


def make_system(name: str, overrides: Mapping[str, Any] | None = None) -> System:
    classes = system_classes()
    if name not in classes:
        raise ValueError(f"unknown system {name!r}; known: {', '.join(classes)}")
    return classes[name](overrides)

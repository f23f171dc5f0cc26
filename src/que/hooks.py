"""Lifecycle hooks: callbacks every worker and engine runs around each job.

They are for error reporters (Sentry and the like), custom metrics and
tracing. Three kinds, registered process-wide so that ``que worker`` picks
up what the application module registers when it is imported::

    @que.before_job
    def started(job): ...

    @que.after_job
    def finished(job, result): ...  # result: JobResult (outcome, duration, error)

    @que.on_job_failure
    def report(job, exc): sentry_sdk.capture_exception(exc)

A hook that raises is logged (logger ``que.hooks``) and otherwise ignored:
a broken reporter must not fail or retry jobs. The async worker and engine
also await async hooks; the sync ones take plain functions only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

HookKind = Literal["before", "after", "failure"]


@dataclass(frozen=True)
class JobResult:
    """How a job's work function ended, as ``after_job`` hooks see it.

    ``outcome``: 'done', 'failed', 'snoozed' or 'discarded'. ``error`` is the
    exception a failed job raised (None otherwise). ``duration`` is seconds of
    the work function, hooks before it excluded.
    """

    outcome: str
    duration: float
    error: BaseException | None = None


class Hooks:
    """The hooks of one kind or another, safe to change from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: dict[HookKind, tuple[Callable[..., Any], ...]] = {
            "before": (),
            "after": (),
            "failure": (),
        }

    def _add(self, kind: HookKind, hook: F) -> F:
        if not callable(hook):
            raise TypeError(f"a {kind} hook must be callable, not {hook!r}")
        with self._lock:
            self._hooks[kind] = (*self._hooks[kind], hook)
        return hook

    def before_job(self, hook: F) -> F:
        """Register ``hook(job)``, called before each job's work function."""
        return self._add("before", hook)

    def after_job(self, hook: F) -> F:
        """Register ``hook(job, result)``, called after each job's work function."""
        return self._add("after", hook)

    def on_job_failure(self, hook: F) -> F:
        """Register ``hook(job, exc)``, called when a work function raises (not for
        ``que.Snooze`` or ``que.Discard``, which are not failures)."""
        return self._add("failure", hook)

    def remove(self, hook: Callable[..., Any]) -> None:
        """Unregister ``hook`` from every kind it was registered as."""
        with self._lock:
            for kind, hooks in self._hooks.items():
                self._hooks[kind] = tuple(h for h in hooks if h is not hook)

    def clear(self) -> None:
        with self._lock:
            for kind in self._hooks:
                self._hooks[kind] = ()

    def of(self, kind: HookKind) -> tuple[Callable[..., Any], ...]:
        """The hooks of ``kind`` now: a snapshot, so a hook may unregister itself."""
        return self._hooks[kind]


def hook_failed(kind: HookKind, hook: Callable[..., Any], job: Any) -> None:
    """Log a hook that raised (call from an ``except`` block)."""
    logger.exception(
        "%s hook %r raised for job %s id=%s; the job goes on",
        kind,
        hook,
        getattr(job, "type", "?"),
        getattr(job, "id", "?"),
        extra={"hook_kind": kind, "job_id": getattr(job, "id", None)},
    )


# The process-wide hooks every worker and engine runs.
hooks = Hooks()
before_job = hooks.before_job
after_job = hooks.after_job
on_job_failure = hooks.on_job_failure
remove_hook = hooks.remove

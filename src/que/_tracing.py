"""OpenTelemetry spans around enqueue and job execution, when the application
has OpenTelemetry.

Optional: without ``opentelemetry-api`` installed, or with it but no tracer
provider configured (the API's default), every span here is a shared no-op
and costs a clock read. Attributes follow OpenTelemetry's messaging
conventions (``messaging.system`` "que", the queue as
``messaging.destination.name``, the job id as ``messaging.message.id``) plus
``que.job.*`` ones. The trace is not carried from enqueue to work: que_jobs is
the table Ruby and Go share, with no column for it.

``opentelemetry`` is not imported here: a provider can only be set through
the API (or named in ``OTEL_PYTHON_TRACER_PROVIDER``), so until the
application has loaded it there is nothing to record, and a worker does not
pay the megabyte its import costs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from ._last_error import headline

if TYPE_CHECKING:
    from .hooks import JobResult
    from .job import BaseJob

trace: Any = None  # opentelemetry.trace, once the application has loaded it

SYSTEM = "que"
_cached: tuple[object, Any] | None = None
# While no provider is configured, look again at most this often: the API reads
# the environment on every call until one is set, a cost per job otherwise.
_RECHECK_SECONDS = 1.0
_none_until = 0.0


def _tracer() -> Any | None:
    """The tracer of the configured provider; None when there is none to record."""
    global _cached, _none_until  # noqa: PLW0603 (one tracer per provider, made once)
    if _cached is None and time.monotonic() < _none_until:
        return None
    if trace is None and not _load_trace():
        _none_until = time.monotonic() + _RECHECK_SECONDS
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        _cached, _none_until = None, time.monotonic() + _RECHECK_SECONDS
        return None
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer = provider.get_tracer("que")
    _cached = (provider, tracer)
    return tracer


def _load_trace() -> bool:
    """Bind ``trace`` if the application uses OpenTelemetry; whether it does."""
    global trace  # noqa: PLW0603 (bound once, when the application has the API)
    module = sys.modules.get("opentelemetry.trace")
    if module is None and os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"):
        try:
            import opentelemetry.trace as module
        except ImportError:  # named, but the API is not installed
            return False
    if module is None or not hasattr(module, "get_tracer_provider"):
        return False  # not loaded, or still being imported by another thread
    trace = module
    return True


class JobSpan:
    """The span of one job's execution, told how the work function ended."""

    def __init__(self, span: Any | None) -> None:
        self._span = span

    def ended(self, result: JobResult) -> None:
        span = self._span
        if span is None or not span.is_recording():
            return
        span.set_attribute("que.job.outcome", result.outcome)
        if result.error is not None:
            span.record_exception(result.error)
            span.set_status(trace.StatusCode.ERROR, headline(result.error))


_NO_JOB_SPAN = JobSpan(None)


def job_span(job: BaseJob) -> AbstractContextManager[JobSpan]:
    """A CONSUMER span around a job's execution (its hooks included), current
    while it runs so the work function's own spans are its children."""
    tracer = _tracer()
    if tracer is None:
        return nullcontext(_NO_JOB_SPAN)
    return _job_span(tracer, job)


@contextmanager
def _job_span(tracer: Any, job: BaseJob) -> Iterator[JobSpan]:
    attributes = {
        **_job_attributes(job, "process", "work"),
        "que.job.error_count": job.error_count,
    }
    with tracer.start_as_current_span(
        f"work {job.type}", kind=trace.SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield JobSpan(span)


def enqueue_span(operation: str, jobs: Sequence[BaseJob]) -> AbstractContextManager[object]:
    """A PRODUCER span around ``operation`` ('enqueue' or 'enqueue_many') of
    ``jobs``; on success it records the ids they were given."""
    tracer = _tracer()
    if tracer is None:
        return nullcontext()
    return _enqueue_span(tracer, operation, jobs)


@contextmanager
def _enqueue_span(tracer: Any, operation: str, jobs: Sequence[BaseJob]) -> Iterator[object]:
    types = {job.type for job in jobs}
    queues = {job.queue for job in jobs}
    name = f"{operation} {next(iter(types))}" if len(types) == 1 else operation
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": operation,
    }
    if len(queues) == 1:
        attributes["messaging.destination.name"] = next(iter(queues))
    if len(types) == 1:
        attributes["que.job.type"] = next(iter(types))
    if operation == "enqueue_many":
        attributes["messaging.batch.message_count"] = len(jobs)
    elif jobs:
        attributes["que.job.priority"] = jobs[0].priority
    with tracer.start_as_current_span(
        name, kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span
        if span.is_recording() and len(jobs) == 1:
            job = jobs[0]
            if job.id is not None:
                span.set_attribute("messaging.message.id", str(job.id))
            if job.inserted is not None:
                span.set_attribute("que.job.inserted", job.inserted)


def _job_attributes(job: BaseJob, operation_type: str, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation_type,
        "messaging.operation.name": operation,
        "messaging.destination.name": job.queue,
        "que.job.type": job.type,
        "que.job.priority": job.priority,
    }
    if job.id is not None:
        attributes["messaging.message.id"] = str(job.id)
    return attributes

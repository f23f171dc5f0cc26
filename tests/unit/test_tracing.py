"""Tracing stays out of the way: without opentelemetry installed, and with it
but no tracer provider configured, spans are shared no-ops. Each case runs in
a fresh interpreter, as the provider is process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("opentelemetry.trace")


def run(code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_without_opentelemetry_installed_spans_are_no_ops() -> None:
    run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if it were not installed
        from que import _tracing
        from que.hooks import JobResult
        from que.job import Job

        assert _tracing.trace is None and _tracing._tracer() is None
        job = Job(type="Mail")
        with _tracing.enqueue_span("enqueue", [job]) as span:
            assert span is None
        with _tracing.job_span(job) as span:
            span.ended(JobResult("failed", 0.1, ValueError("x")))
        """
    )


def test_with_no_tracer_provider_configured_no_span_is_made() -> None:
    run(
        """
        from opentelemetry import trace
        from que import _tracing
        from que.job import Job

        assert _tracing._tracer() is None
        with _tracing.job_span(Job(type="Mail")) as span:
            assert span is _tracing._NO_JOB_SPAN
        # No-op provider set explicitly: the same.
        trace.set_tracer_provider(trace.NoOpTracerProvider())
        assert _tracing._tracer() is None
        """
    )


def test_a_configured_provider_is_used_and_its_tracer_kept() -> None:
    run(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from que import _tracing

        trace.set_tracer_provider(TracerProvider())
        tracer = _tracing._tracer()
        assert tracer is not None and _tracing._tracer() is tracer
        """
    )

"""Tracing stays out of the way: without opentelemetry installed, and with it
but no tracer provider configured, spans are shared no-ops. Each case runs in
a fresh interpreter, as the provider is process-wide."""

from __future__ import annotations

import os
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


def test_que_does_not_load_opentelemetry_until_the_application_does() -> None:
    run(
        """
        import sys
        from que import _tracing
        from que.job import Job

        with _tracing.job_span(Job(type="Mail")) as span:
            assert span is _tracing._NO_JOB_SPAN
        assert "opentelemetry" not in sys.modules

        # The application sets a provider later: seen at the next look.
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        _tracing._none_until = 0.0
        assert _tracing._tracer() is not None
        with _tracing.job_span(Job(type="Mail")) as span:
            assert span is not _tracing._NO_JOB_SPAN
        """
    )


def test_a_provider_named_in_the_environment_loads_the_api() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom que import _tracing\n"
            "assert _tracing._tracer() is not None\n"
            "assert 'opentelemetry.trace' in sys.modules",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"},
    )
    assert done.returncode == 0, done.stderr


def test_an_api_module_still_being_imported_is_not_used_yet() -> None:
    run(
        """
        import sys, types
        sys.modules["opentelemetry.trace"] = types.ModuleType("opentelemetry.trace")
        from que import _tracing

        assert _tracing._tracer() is None and _tracing.trace is None
        """
    )

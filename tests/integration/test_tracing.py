"""OpenTelemetry spans around enqueue and job execution, on both faces and
both engines, recorded by the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import que

from ..sides import AnyClient, Side, r, wait_until

ENGINES = ("classic", "batch")


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A tracer provider for this test only, as an application would configure
    with ``trace.set_tracer_provider`` (which may be called once per process)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    # que looks for a newly configured provider once a second; this one is
    # meant from the first job on.
    monkeypatch.setattr(que._tracing, "_none_until", 0.0)
    yield exporter
    provider.shutdown()


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


async def test_enqueue_and_enqueue_many_are_producer_spans(
    side: Side, qc: AnyClient, spans: InMemorySpanExporter
) -> None:
    job = await r(qc.enqueue(side.job_class(type="Mail", queue="mailers", priority=5)))
    await r(qc.enqueue_many([side.job_class(type="Mail", queue="mailers") for _ in range(3)]))
    await r(qc.enqueue_many([side.job_class(type="A"), side.job_class(type="B", queue="q")]))

    one, many, mixed = spans.get_finished_spans()
    assert (one.name, one.kind) == ("enqueue Mail", SpanKind.PRODUCER)
    assert dict(one.attributes or {}) == {
        "messaging.system": "que",
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": "mailers",
        "messaging.message.id": str(job.id),
        "que.job.type": "Mail",
        "que.job.priority": 5,
        "que.job.inserted": True,
    }
    assert many.name == "enqueue_many Mail"
    assert many.attributes is not None
    assert many.attributes["messaging.batch.message_count"] == 3
    assert many.attributes["messaging.destination.name"] == "mailers"
    # Jobs of several types and queues: neither is named.
    assert mixed.name == "enqueue_many"
    assert mixed.attributes is not None
    assert "messaging.destination.name" not in mixed.attributes
    assert "que.job.type" not in mixed.attributes


async def test_an_enqueue_that_fails_records_its_exception(
    side: Side, qc: AnyClient, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(que.InvalidJobError):
        await r(qc.enqueue(side.job_class(type="")))
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


async def test_the_enqueue_span_is_a_child_of_the_callers_span(
    side: Side, qc: AnyClient, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer_provider().get_tracer("app")
    with tracer.start_as_current_span("checkout"):
        await r(qc.enqueue(side.job_class(type="Mail")))
    enqueue, checkout = spans.get_finished_spans()
    assert enqueue.parent is not None and checkout.context is not None
    assert enqueue.parent.span_id == checkout.context.span_id


@pytest.mark.parametrize("engine", ENGINES)
async def test_each_job_runs_in_a_consumer_span(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    run: Any,
    spans: InMemorySpanExporter,
    engine: str,
) -> None:
    async def ok(job: Any) -> None:
        # The work function's own spans are children of the job's.
        with trace.get_tracer_provider().get_tracer("app").start_as_current_span("inside"):
            pass

    async def broken(job: Any) -> None:
        raise ValueError("card declined")

    async def snooze(job: Any) -> None:
        raise que.Snooze(3600)

    ids = {}
    for job_type in ("Ok", "Broken", "Snooze"):
        ids[job_type] = (await r(qc.enqueue(side.job_class(type=job_type)))).id
    conn.execute("UPDATE que_jobs SET error_count = 2 WHERE job_class = 'Broken'")
    spans.clear()
    work = {"Ok": side.handler(ok), "Broken": side.handler(broken), "Snooze": side.handler(snooze)}
    await run(engine, work)
    await wait_until(lambda: len(named(spans, "work ")) == 3, 30, "three job spans")

    by_type = {s.name.removeprefix("work "): s for s in named(spans, "work ")}
    for job_type, span in by_type.items():
        assert span.kind is SpanKind.CONSUMER
        attributes = dict(span.attributes or {})
        assert attributes["messaging.system"] == "que"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.destination.name"] == ""
        assert attributes["messaging.message.id"] == str(ids[job_type])
        assert attributes["que.job.type"] == job_type
    assert dict(by_type["Ok"].attributes or {})["que.job.outcome"] == "done"
    assert by_type["Ok"].status.status_code is not StatusCode.ERROR
    (inside,) = named(spans, "inside")
    assert inside.parent is not None and by_type["Ok"].context is not None
    assert inside.parent.span_id == by_type["Ok"].context.span_id

    failed = by_type["Broken"]
    assert dict(failed.attributes or {})["que.job.outcome"] == "failed"
    assert dict(failed.attributes or {})["que.job.error_count"] == 2
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError: card declined"
    (event,) = failed.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "ValueError"

    snoozed = by_type["Snooze"]  # not a failure
    assert dict(snoozed.attributes or {})["que.job.outcome"] == "snoozed"
    assert snoozed.status.status_code is not StatusCode.ERROR
    assert snoozed.events == ()

"""Prometheus metrics (the ``metrics`` extra): counters and durations of the jobs
this process works, fed by the lifecycle hooks, and the depth of every queue,
read from the database when scraped.

Imported only when asked for (``que worker --metrics-port``, ``que web``'s
/metrics), so prometheus-client stays optional.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import hooks
from ._observe import observers
from .health import QueueStats, queue_totals

STATES = ("ready", "scheduled", "locked", "failed")


class JobMetrics:
    """Jobs worked by this process, per queue, type and outcome, and their durations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.worked = Counter(
            "que_jobs_worked",
            "Jobs whose work function ran, by outcome (done, failed, snoozed, discarded)",
            ("queue", "type", "outcome"),
            registry=registry,
        )
        self.failed = Counter(
            "que_jobs_failed",
            "Jobs whose work function raised",
            ("queue", "type"),
            registry=registry,
        )
        self.duration = Histogram(
            "que_job_duration_seconds",
            "Seconds a work function ran",
            ("queue", "type"),
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )

    def after_job(self, job: Any, result: hooks.JobResult) -> None:
        self.worked.labels(job.queue, job.type, result.outcome).inc()
        if result.outcome == "failed":
            self.failed.labels(job.queue, job.type).inc()
        self.duration.labels(job.queue, job.type).observe(result.duration)


class EngineMetrics:
    """What the workers and engines of this process report besides jobs (an
    ``_observe.Observer``): claim batch sizes and connection errors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.claim_size = Histogram(
            "que_claim_batch_size",
            "Jobs the batch engine claimed in one claim (0: none was due)",
            registry=registry,
            buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )
        self.connection_errors = Counter(
            "que_connection_errors",
            "Connection errors workers recovered from, by session "
            "(worker, locker or listener): lost, refused, or none from the pool in time",
            ("session",),
            registry=registry,
        )

    def claimed(self, count: int, wanted: int) -> None:
        self.claim_size.observe(count)

    def connection_error(self, session: str, exc: BaseException) -> None:
        self.connection_errors.labels(session).inc()


def queue_families(stats: Sequence[QueueStats]) -> list[GaugeMetricFamily]:
    """Gauges of every queue's jobs by state and of its oldest due job's wait."""
    jobs = GaugeMetricFamily(
        "que_queue_jobs", "Jobs in que_jobs by state", labels=("queue", "state")
    )
    dead = GaugeMetricFamily("que_queue_dead_jobs", "Jobs in que_dead_jobs", labels=("queue",))
    age = GaugeMetricFamily(
        "que_queue_oldest_due_age_seconds",
        "How long the oldest due, unlocked job has waited (0 when none waits)",
        labels=("queue",),
    )
    for total in queue_totals(stats):
        for state in STATES:
            jobs.add_metric((total.queue, state), getattr(total, state))
        if total.dead is not None:
            dead.add_metric((total.queue,), total.dead)
        waited = total.oldest_due_age
        age.add_metric((total.queue,), 0.0 if waited is None else waited.total_seconds())
    return [jobs, dead, age]


class QueueCollector(Collector):
    """Reads queue depths when scraped, with ``read`` (e.g. a client's queue_stats)."""

    def __init__(self, read: Callable[[], Sequence[QueueStats]]) -> None:
        self._read = read
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            stats = self._read()
        yield from queue_families(stats)


def serve_worker_metrics(port: int, read: Callable[[], Sequence[QueueStats]]) -> CollectorRegistry:
    """Serve a worker's metrics on ``port`` (all addresses) from a thread; its
    job counters are fed by an after_job hook registered here, its claim and
    connection metrics by an observer."""
    registry = CollectorRegistry()
    metrics = JobMetrics(registry)
    hooks.after_job(metrics.after_job)
    observers.add(EngineMetrics(registry))
    registry.register(QueueCollector(read))
    start_http_server(port, registry=registry)
    return registry

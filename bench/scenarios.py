"""The scenarios. Each runs one system against one fresh database and returns measurements.

burndown  bulk-enqueue ``jobs`` no-op jobs (timed: the bulk enqueue rate), then
          start the worker processes and time them until no job is left
          (the burn-down rate); the workers' peak RSS is reported too.
enqueue   enqueue ``single_jobs`` jobs one statement each (timed: the single
          enqueue rate), then let the workers run them all (untimed).
latency   start the workers, then offer ``rate`` jobs/s for ``latency_seconds``
          from a separate process; each job's enqueue-to-start time is
          its start time in the worker minus the time its enqueue call began.
priority  bulk-enqueue ``jobs`` no-op jobs and start the burn-down; once a tenth
          of them ran, a separate process offers ``urgent_jobs`` jobs at the
          system's most urgent priority, ``urgent_rate`` per second; each one's
          enqueue-to-start time says whether the jobs claimed ahead of it held
          it back.
io        bulk-enqueue ``io_jobs`` jobs that each wait ``io_wait`` seconds
          (asyncio.sleep or time.sleep: I/O-bound work), then time the
          workers from go until no job is left; the ideal rate is the
          system's concurrency divided by the wait. Opt-in: asked for by name.

Every measurement carries the exactly-once check of its run: each job's
sequence number must have been recorded by exactly one work-function call
across all worker processes, and no job may be left in the table.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.cpu import CpuWindow
from bench.pg import Poller
from bench.procs import Child, ChildError, WorkerGroup, run_child
from bench.systems.base import System


@dataclass(frozen=True)
class Params:
    jobs: int = 50_000
    single_jobs: int = 2_000
    batch: int = 5_000
    rate: float = 200.0
    latency_seconds: float = 10.0
    warmup_seconds: float = 1.0
    urgent_jobs: int = 50
    urgent_rate: float = 200.0
    io_jobs: int = 20_000
    io_wait: float = 0.05
    timeout: float = 900.0
    stall: float = 60.0


@dataclass(frozen=True)
class Check:
    """The exactly-once verdict of one run."""

    expected: int
    ran: int
    missing: int
    duplicates: int
    unexpected: int

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicates == 0 and self.unexpected == 0

    def problem(self) -> str | None:
        if self.ok:
            return None
        return (
            f"exactly-once violated: {self.missing} of {self.expected} jobs never ran, "
            f"{self.duplicates} ran more than once, {self.unexpected} unknown"
        )


@dataclass
class Measurement:
    scenario: str
    metrics: dict[str, float]
    check: Check | None
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    #: False when the scenario does not apply to the system (``reason`` says why):
    #: nothing ran, and the line is neither a result nor a failure.
    applicable: bool = True

    @property
    def valid(self) -> bool:
        return self.reason is None and self.check is not None and self.check.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "valid": self.valid,
            "applicable": self.applicable,
            "reason": self.reason or (self.check.problem() if self.check else None),
            "metrics": self.metrics,
            "details": self.details,
            "exactly_once": asdict(self.check) if self.check else None,
        }


def exactly_once(done: Iterable[dict[str, Any]], expected: range) -> Check:
    counts = bytearray(len(expected))
    ran = unexpected = 0
    for message in done:
        for seq in message["seqs"]:
            ran += 1
            index = seq - expected.start
            if 0 <= index < len(counts):
                counts[index] = min(counts[index] + 1, 255)
            else:
                unexpected += 1
    missing = counts.count(0)
    once = counts.count(1)
    return Check(len(expected), ran, missing, len(counts) - missing - once, unexpected)


@dataclass(frozen=True)
class Drained:
    """The workers' run through a table: how long, what each process sent, the CPU used."""

    seconds: float
    done: list[dict[str, Any]]
    #: ``harness_cores``, and ``machine_cores``, ``server_cores`` when they could be
    #: read (see bench/cpu.py).
    cpu: dict[str, float]
    #: Seconds after go at which the workers had first recorded each of the
    #: job counts asked for (``drain``'s ``marks``).
    marks: dict[int, float] = field(default_factory=dict)


class Run:
    """One system on one fresh database: its logs, its install, its workers."""

    def __init__(self, system: System, url: str, params: Params, logs: Path, label: str) -> None:
        self.system = system
        self.url = url
        self.params = params
        self.logs = logs
        self.label = label

    def install(self) -> None:
        run_child(self.system, self.url, ["install"], self.log_path("install"), "installed", 300)

    def enqueue(self, mode: str, count: int, **options: float) -> dict[str, Any]:
        role = ["enqueue", "--mode", mode, "--count", str(count)]
        for name, value in options.items():
            role += [f"--{name}", str(value)]
        return run_child(
            self.system,
            self.url,
            role,
            self.log_path(f"enqueue-{mode}"),
            "result",
            self.params.timeout,
        )

    def workers(self, io_wait: float = 0.0) -> WorkerGroup:
        return WorkerGroup(self.system, self.url, self.logs, self.label, io_wait)

    def wait_progress(
        self, group: WorkerGroup, target: int, marks: dict[int, float | None] | None = None
    ) -> None:
        """Return once the workers have recorded ``target`` jobs; raise if they stall or die.

        ``marks`` maps job counts to None: each gets the perf_counter time at
        which the workers were first seen to have recorded that many.
        """
        started = last_change = time.perf_counter()
        last = -1
        while True:
            progress = group.progress
            now = time.perf_counter()
            if marks is not None and progress != last:
                for count, seen in marks.items():
                    if seen is None and progress >= count:
                        marks[count] = now
            if progress >= target:
                return
            if progress != last:
                last, last_change = progress, now
            elif now - last_change > self.params.stall:
                raise TimeoutError(
                    f"no progress for {self.params.stall:.0f}s at {progress} of {target} jobs"
                )
            if now - started > self.params.timeout:
                raise TimeoutError(
                    f"only {progress} of {target} jobs ran in {self.params.timeout:.0f}s"
                )
            for child in group.children:
                if child.proc.poll() is not None:
                    child.expect("done", 1)  # raises with the child's error, if it sent one
                    raise ChildError(f"a worker exited before it was told to stop: {child.log}")
            time.sleep(0.002)

    def drain(self, count: int, io_wait: float = 0.0, marks: Iterable[int] = ()) -> Drained:
        """Start the workers, time them from go until the table is empty, and stop them.

        ``marks``: job counts whose time after go to note (see ``Drained``).
        """
        group = self.workers(io_wait)
        poller = Poller(self.url, self.system.pending_sql)
        cpu = CpuWindow(self.url)
        seen: dict[int, float | None] = dict.fromkeys(marks)
        try:
            group.wait_ready()
            cpu.start()
            started = group.go()
            self.wait_progress(group, count, seen)
            ended = poller.wait_empty(self.params.timeout)
            used = cpu.stop()
            done = group.stop()
        finally:
            poller.close()
            group.close()
        times = {n: at - started for n, at in seen.items() if at is not None}
        return Drained(ended - started, done, used, times)

    def log_path(self, what: str) -> Path:
        return self.logs / f"{self.label}-{what}.log"


def burndown(run: Run) -> list[Measurement]:
    params = run.params
    jobs = run.system.burndown_jobs(params.jobs)
    run.install()
    enqueued = run.enqueue("bulk", jobs, batch=params.batch)
    drained = run.drain(jobs)
    done, seconds = drained.done, drained.seconds
    check = exactly_once(done, range(jobs))
    cpu = sum(message["cpu_seconds"] for message in done)
    rss = [message["peak_rss_kb"] / 1024 for message in done]
    return [
        Measurement(
            "burndown",
            {
                "jobs_per_s": jobs / seconds,
                "seconds": seconds,
                "worker_cpu_us_per_job": cpu / jobs * 1e6,
                # CPU seconds per second of the burn-down: the workers' own, the
                # PostgreSQL server's, the harness's, and every core's busy time.
                "worker_cores": cpu / seconds,
                **drained.cpu,
            },
            check,
            {"jobs": jobs, "worker_processes": len(done)},
        ),
        Measurement(
            "enqueue_bulk",
            {"jobs_per_s": jobs / enqueued["seconds"], "seconds": enqueued["seconds"]},
            check,
            {"jobs": jobs, "batch": params.batch},
        ),
        Measurement(
            "rss",
            {"peak_rss_mb": max(rss)},
            check,
            {"per_process_mb": rss, "during": "burndown"},
        ),
    ]


def enqueue(run: Run) -> list[Measurement]:
    params = run.params
    run.install()
    enqueued = run.enqueue("single", params.single_jobs)
    drained = run.drain(params.single_jobs)
    return [
        Measurement(
            "enqueue_single",
            {
                "jobs_per_s": params.single_jobs / enqueued["seconds"],
                "seconds": enqueued["seconds"],
            },
            exactly_once(drained.done, range(params.single_jobs)),
            {"jobs": params.single_jobs},
        )
    ]


def latency(run: Run) -> list[Measurement]:
    params = run.params
    count = max(1, round(params.rate * params.latency_seconds))
    warmup = min(round(params.rate * params.warmup_seconds), count // 5)
    run.install()
    group = run.workers()
    poller = Poller(run.url, run.system.pending_sql)
    try:
        group.wait_ready()
        group.go()
        time.sleep(0.2)
        produced = run.enqueue("paced", count, rate=params.rate)
        offered = time.perf_counter()
        run.wait_progress(group, count)
        backlog = time.perf_counter() - offered
        poller.wait_empty(params.timeout)
        done = group.stop()
    finally:
        poller.close()
        group.close()
    check = exactly_once(done, range(count))
    # Enqueue-to-start from when the enqueue call began (the headline), and
    # from when it returned (the insert's own round trip and commit excluded).
    calls = produced["calls"]
    from_call: list[float] = []
    from_return: list[float] = []
    for message in done:
        for seq, lat in zip(message["latency_seqs"], message["latencies"], strict=True):
            if seq >= warmup:
                from_call.append(lat * 1000)
                from_return.append((lat - calls[seq]) * 1000)
    from_call.sort()
    from_return.sort()
    achieved = count / produced["seconds"]
    if not from_call:
        return [Measurement("latency", {}, check, reason="no latency was recorded")]
    # The premise is a steady offered load: a producer starved of CPU (the
    # machine overloaded) measured something else.
    reason = None
    if achieved < 0.95 * params.rate:
        reason = (
            f"the producer offered only {achieved:.0f} of {params.rate:g} jobs/s "
            "(machine overloaded, or enqueue calls slower than its lanes allow)"
        )
    return [
        Measurement(
            "latency",
            {
                "p50_ms": statistics.median(from_call),
                "p99_ms": percentile(from_call, 99),
                "max_ms": from_call[-1],
                "mean_ms": statistics.fmean(from_call),
                "p50_after_commit_ms": statistics.median(from_return),
                "p99_after_commit_ms": percentile(from_return, 99),
                "enqueue_call_p50_ms": statistics.median(calls) * 1000,
                "achieved_rate": achieved,
            },
            check,
            {
                "offered_rate": params.rate,
                # The workers could not take the offered load: they were still
                # busy long after the producer stopped.
                "saturated": backlog > 1.0,
                "backlog_seconds": backlog,
                "seconds": params.latency_seconds,
                "jobs": count,
                "warmup_jobs_excluded": warmup,
                "producer_max_lag_ms": produced["max_lag"] * 1000,
            },
            reason,
        )
    ]


def priority(run: Run) -> list[Measurement]:
    params = run.params
    jobs = run.system.burndown_jobs(params.jobs)
    urgent = params.urgent_jobs
    run.install()
    run.enqueue("bulk", jobs, batch=params.batch)
    group = run.workers()
    role = ["enqueue", "--mode", "urgent", "--wait-go", "--start", str(jobs)]
    role += ["--count", str(urgent), "--rate", str(params.urgent_rate)]
    producer = Child(run.system, run.url, role, run.log_path("enqueue-urgent"))
    poller = Poller(run.url, run.system.pending_sql)
    try:
        group.wait_ready()
        producer.expect("ready", 120)
        group.go()
        run.wait_progress(group, jobs // 10)
        producer.send("go")
        produced = producer.expect("result", params.timeout)
        # Jobs of the burn-down still to run when the last urgent job was offered.
        left = jobs + urgent - group.progress
        run.wait_progress(group, jobs + urgent)
        poller.wait_empty(params.timeout)
        done = group.stop()
    finally:
        producer.close()
        poller.close()
        group.close()
    check = exactly_once(done, range(jobs + urgent))
    calls = produced["calls"]
    pairs = [
        (lat * 1000, (lat - calls[seq - jobs]) * 1000)
        for message in done
        for seq, lat in zip(message["latency_seqs"], message["latencies"], strict=True)
        if seq >= jobs
    ]
    waits = sorted(pair[0] for pair in pairs)
    # From when the enqueue call returned: the insert's own commit excluded.
    after_commit = sorted(pair[1] for pair in pairs)
    if not waits:
        return [Measurement("priority", {}, check, reason="no urgent job was recorded")]
    reason = None
    if left < jobs // 10:
        reason = (
            f"only {left} of {jobs} burn-down jobs were left when the last urgent job was "
            "offered: the burn-down was nearly over"
        )
    return [
        Measurement(
            "priority",
            {
                "p50_ms": statistics.median(waits),
                "p99_ms": percentile(waits, 99),
                "max_ms": waits[-1],
                "p50_after_commit_ms": statistics.median(after_commit),
                "p99_after_commit_ms": percentile(after_commit, 99),
                "enqueue_call_p50_ms": statistics.median(calls) * 1000,
            },
            check,
            {
                "jobs": jobs,
                "urgent_jobs": urgent,
                "urgent_rate": params.urgent_rate,
                "backlog_left_after_urgent": left,
                "producer_max_lag_ms": produced["max_lag"] * 1000,
            },
            reason,
        )
    ]


def io(run: Run) -> list[Measurement]:
    """I/O-bound jobs: how close the workers come to concurrency / wait jobs/s."""
    params = run.params
    jobs = run.system.burndown_jobs(params.io_jobs)
    concurrency = run.system.concurrency()
    if concurrency is None:  # the harness does not run io without one
        raise ValueError(f"{run.system.name} has no bounded concurrency")
    # Every job waits io_wait, and at most `concurrency` wait at once.
    ideal = min(concurrency, jobs) / params.io_wait
    waves = math.ceil(jobs / concurrency)
    tenth = max(1, jobs // 10)
    run.install()
    run.enqueue("bulk", jobs, batch=params.batch)
    drained = run.drain(jobs, params.io_wait, marks=(1, tenth, jobs - tenth, jobs))
    done, seconds, marks = drained.done, drained.seconds, drained.marks
    check = exactly_once(done, range(jobs))
    cpu = sum(message["cpu_seconds"] for message in done)
    rate = jobs / seconds
    metrics = {
        "jobs_per_s": rate,
        "seconds": seconds,
        "ideal_jobs_per_s": ideal,
        "fraction_of_ideal": rate / ideal,
        "worker_cpu_us_per_job": cpu / jobs * 1e6,
        "worker_cores": cpu / seconds,
        **drained.cpu,
    }
    if tenth in marks and jobs - tenth in marks and marks[jobs - tenth] > marks[tenth]:
        # Between a tenth and nine tenths done: the rate without the start
        # (first claims, threads starting) and the end (last writes).
        steady = (jobs - 2 * tenth) / (marks[jobs - tenth] - marks[tenth])
        metrics["steady_jobs_per_s"] = steady
        metrics["steady_fraction_of_ideal"] = steady / ideal
    if 1 in marks:
        # From go until the first job was recorded, its own wait left out.
        metrics["first_job_s"] = max(0.0, marks[1] - params.io_wait)
    if jobs in marks:
        # From the last job recorded until the table was seen empty.
        metrics["last_write_s"] = max(0.0, seconds - marks[jobs])
    return [
        Measurement(
            "io",
            metrics,
            check,
            {
                "jobs": jobs,
                "io_wait": params.io_wait,
                "concurrency": concurrency,
                "concurrency_setting": run.system.concurrency_key,
                # The shortest possible burn-down: every wave of jobs back to back.
                "min_seconds": waves * params.io_wait,
                "worker_processes": len(done),
                "marks": {str(n): at for n, at in marks.items()},
            },
        )
    ]


def percentile(ordered: list[float], pct: float) -> float:
    """Linear-interpolated percentile of an ascending list."""
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


Scenario = Callable[[Run], list[Measurement]]

#: Scenario name -> (function, the measurements it produces).
SCENARIOS: dict[str, tuple[Scenario, tuple[str, ...]]] = {
    "burndown": (burndown, ("burndown", "enqueue_bulk", "rss")),
    "enqueue": (enqueue, ("enqueue_single",)),
    "latency": (latency, ("latency",)),
    "priority": (priority, ("priority",)),
    "io": (io, ("io",)),
}

#: Scenarios a run leaves out unless asked for by name: io measures what a
#: system's concurrency setting allows, and its defaults are not made for it.
OPT_IN = frozenset({"io"})

FAILURES = (ChildError, TimeoutError, OSError)

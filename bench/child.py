"""The processes the harness starts: ``python -m bench.child --system S --url U ROLE``.

Roles:
  install  create the system's schema, then say ``installed``;
  enqueue  enqueue jobs (``--mode bulk|single|paced|urgent``) and report the time
           taken; with ``--wait-go`` it connects, says ``ready`` and starts on ``go``;
  worker   run the system's workers: say ``ready``, start on ``go``, report
           progress, and on ``stop`` shut down and send what ran; with
           ``--io-wait S`` each job waits S seconds before it counts as run.

Messages to the harness are JSON lines on the process's original stdout;
anything a library prints goes to stderr instead, so it cannot garble them.
Commands from the harness (``go``, ``stop``) are lines on stdin; stdin
closing counts as ``stop``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, cast

from bench.recorder import Recorder
from bench.systems import make_system
from bench.systems.base import AsyncProducer, Producer, System, WorkerContext

PROGRESS_INTERVAL = 0.01
#: Connections the paced (latency) producer deals its jobs to.
PACED_LANES = 4


class Channel:
    """JSON-line messages to the harness, safe to send from any thread."""

    def __init__(self) -> None:
        self._out: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        self._lock = threading.Lock()

    def send(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, separators=(",", ":"))
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()


@dataclass(frozen=True)
class Plan:
    mode: str
    start: int
    count: int
    batch: int
    rate: float

    @property
    def seqs(self) -> range:
        return range(self.start, self.start + self.count)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    channel = Channel()
    try:
        system = make_system(args.system, json.loads(args.settings))
        if args.role == "install":
            system.install(args.url)
            channel.send("installed")
        elif args.role == "enqueue":
            plan = Plan(args.mode, args.start, args.count, args.batch, args.rate)
            gate = _gate(channel) if args.wait_go else None
            channel.send("result", **enqueue(system, args.url, plan, gate))
        else:
            work(system, args.url, channel, args.io_wait)
    except BaseException as exc:
        channel.send("error", error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
        return 1
    return 0


# -- enqueue ---------------------------------------------------------------------


def _gate(channel: Channel) -> Callable[[], None]:
    """Say ``ready``, then block until the harness says ``go`` (or closes stdin)."""

    def wait() -> None:
        channel.send("ready")
        for line in sys.stdin:
            if line.strip() == "go":
                return

    return wait


def enqueue(
    system: System, url: str, plan: Plan, gate: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Enqueue the plan's jobs and say how long it took.

    ``bulk`` and ``single`` run on one connection, one call after another.
    ``paced`` is open-loop: job k is due at ``k / rate`` seconds, and the jobs
    are dealt round-robin to PACED_LANES connections, so one slow enqueue
    call delays only its own lane and the offered load stays steady.
    ``urgent`` is ``paced`` with the system's most urgent priority. ``gate``,
    if given, runs once the connections are open, before the clock starts.
    """
    paced = plan.mode in ("paced", "urgent")
    lanes = PACED_LANES if paced else 1
    producers = [system.producer(url) for _ in range(lanes)]
    if inspect.iscoroutinefunction(producers[0].open):
        outcome: dict[str, Any] = {}

        async def run() -> None:
            outcome.update(await _enqueue_async(cast(list[AsyncProducer], producers), plan, gate))

        system.run_async(run())
        return outcome
    return _enqueue_sync(cast(list[Producer], producers), plan, gate)


def _enqueue_sync(
    producers: list[Producer], plan: Plan, gate: Callable[[], None] | None
) -> dict[str, Any]:
    for producer in producers:
        producer.open()
    if gate is not None:
        gate()
    seqs = plan.seqs
    calls = [0.0] * len(seqs)
    lags = [0.0] * len(producers)
    started = time.perf_counter()

    def lane(n: int) -> None:
        producer = producers[n]
        send = producer.enqueue_urgent if plan.mode == "urgent" else producer.enqueue_one
        for k in range(n, len(seqs), len(producers)):
            delay = started + k / plan.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                lags[n] = max(lags[n], -delay)
            before = time.perf_counter()
            send(seqs[k], time.time())
            calls[k] = time.perf_counter() - before

    if plan.mode == "bulk":
        for i in range(0, len(seqs), plan.batch):
            producers[0].enqueue_batch(seqs[i : i + plan.batch])
    elif plan.mode == "single":
        for seq in seqs:
            producers[0].enqueue_one(seq, 0.0)
    else:
        threads = [threading.Thread(target=lane, args=(n,)) for n in range(len(producers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    seconds = time.perf_counter() - started
    for producer in producers:
        producer.close()
    return _outcome(plan, seconds, lags, calls)


async def _enqueue_async(
    producers: list[AsyncProducer], plan: Plan, gate: Callable[[], None] | None
) -> dict[str, Any]:
    import asyncio

    for producer in producers:
        await producer.open()
    if gate is not None:
        await asyncio.to_thread(gate)
    seqs = plan.seqs
    calls = [0.0] * len(seqs)
    lags = [0.0] * len(producers)
    started = time.perf_counter()

    async def lane(n: int) -> None:
        producer = producers[n]
        send = producer.enqueue_urgent if plan.mode == "urgent" else producer.enqueue_one
        for k in range(n, len(seqs), len(producers)):
            delay = started + k / plan.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lags[n] = max(lags[n], -delay)
            before = time.perf_counter()
            await send(seqs[k], time.time())
            calls[k] = time.perf_counter() - before

    if plan.mode == "bulk":
        for i in range(0, len(seqs), plan.batch):
            await producers[0].enqueue_batch(seqs[i : i + plan.batch])
    elif plan.mode == "single":
        for seq in seqs:
            await producers[0].enqueue_one(seq, 0.0)
    else:
        await asyncio.gather(*(lane(n) for n in range(len(producers))))
    seconds = time.perf_counter() - started
    for producer in producers:
        await producer.close()
    return _outcome(plan, seconds, lags, calls)


def _outcome(plan: Plan, seconds: float, lags: list[float], calls: list[float]) -> dict[str, Any]:
    paced = plan.mode in ("paced", "urgent")
    return {
        "seconds": seconds,
        "count": plan.count,
        "max_lag": max(lags),
        "calls": calls if paced else [],
    }


# -- work ------------------------------------------------------------------------


def work(system: System, url: str, channel: Channel, io_wait: float = 0.0) -> None:
    recorder = Recorder()
    go = threading.Event()
    stop = threading.Event()
    finished = threading.Event()
    cpu_at_go: list[float] = []

    def commands() -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "go":
                cpu_at_go.append(_cpu_seconds())
                go.set()
            elif command == "stop":
                stop.set()
        stop.set()
        go.set()

    def progress() -> None:
        sent = 0
        while not finished.wait(PROGRESS_INTERVAL):
            count = recorder.count()
            if count != sent:
                channel.send("progress", n=count)
                sent = count

    threading.Thread(target=commands, name="bench-commands", daemon=True).start()
    reporter = threading.Thread(target=progress, name="bench-progress", daemon=True)
    reporter.start()
    ctx = WorkerContext(recorder, stop, lambda: channel.send("ready"), go, io_wait)
    system.work(url, ctx)
    finished.set()
    reporter.join()
    channel.send(
        "done",
        peak_rss_kb=peak_rss_kb(),
        cpu_seconds=_cpu_seconds() - (cpu_at_go[0] if cpu_at_go else 0.0),
        seqs=recorder.seqs.tolist(),
        latency_seqs=recorder.latency_seqs.tolist(),
        latencies=recorder.latencies.tolist(),
    )


def peak_rss_kb() -> int:
    """This process's peak resident set size, in KiB.

    ``VmHWM`` belongs to the process's own address space. ``ru_maxrss`` is
    not used: Linux carries it over from the parent through fork and exec,
    so a child would report at least the harness's own size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("--system", required=True)
    parser.add_argument("--settings", default="{}", help="JSON object of setting overrides")
    parser.add_argument("--url", required=True)
    roles = parser.add_subparsers(dest="role", required=True)
    roles.add_parser("install")
    worker = roles.add_parser("worker")
    worker.add_argument(
        "--io-wait", type=float, default=0.0, help="seconds each job waits (the io scenario)"
    )
    enq = roles.add_parser("enqueue")
    enq.add_argument("--mode", choices=("bulk", "single", "paced", "urgent"), required=True)
    enq.add_argument("--start", type=int, default=0)
    enq.add_argument("--count", type=int, required=True)
    enq.add_argument("--batch", type=int, default=1000)
    enq.add_argument("--rate", type=float, default=200.0)
    enq.add_argument("--wait-go", action="store_true", help="say ready, start on go")
    return parser


if __name__ == "__main__":
    sys.exit(main())

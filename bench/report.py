"""Turns result lines into the summary: medians, ratios, targets, as Markdown."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: (scenario, metric, column title, higher is better)
COLUMNS: tuple[tuple[str, str, str, bool], ...] = (
    ("burndown", "jobs_per_s", "burn-down jobs/s", True),
    ("enqueue_bulk", "jobs_per_s", "bulk enqueue jobs/s", True),
    ("enqueue_single", "jobs_per_s", "single enqueue jobs/s", True),
    ("latency", "p50_ms", "latency p50 ms", False),
    ("latency", "p99_ms", "latency p99 ms", False),
    ("priority", "p50_ms", "urgent job p50 ms", False),
    ("priority", "p99_ms", "urgent job p99 ms", False),
    ("rss", "peak_rss_mb", "worker peak RSS MB", False),
)

#: Throughput columns compared across systems: (scenario, title).
RATIO_ROWS = (
    ("burndown", "burn-down"),
    ("enqueue_bulk", "bulk enqueue"),
    ("enqueue_single", "single enqueue"),
)

#: The burn-down's CPU figures, in the order of the CPU table's columns.
CPU_METRICS = (
    "worker_cpu_us_per_job",
    "worker_cores",
    "server_cores",
    "backend_cores",
    "harness_cores",
    "machine_cores",
)

PEERS = ("pgqueuer", "procrastinate")
#: The io scenario's goal: this fraction of concurrency / wait.
IO_TARGET = 0.9
BASELINE = "raw_sql"

RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"


def load(path: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    """The lines of one run in a results file: ``run_id``'s, else the last run's."""
    lines = [json.loads(text) for text in path.read_text().splitlines() if text.strip()]
    if not lines:
        raise ValueError(f"{path} holds no results")
    wanted = run_id or lines[-1]["run_id"]
    chosen = [line for line in lines if line["run_id"] == wanted]
    if not chosen:
        raise ValueError(f"{path} holds no results of run {wanted}")
    return chosen


class Summary:
    def __init__(self, lines: Sequence[dict[str, Any]]) -> None:
        self.lines = lines
        self.systems: list[str] = list(dict.fromkeys(line["system"] for line in lines))

    def values(self, system: str, scenario: str, metric: str) -> list[float]:
        return [
            line["metrics"][metric]
            for line in self.lines
            if line["system"] == system
            and line["scenario"] == scenario
            and line["valid"]
            and metric in line["metrics"]
        ]

    def median(self, system: str, scenario: str, metric: str) -> float | None:
        values = self.values(system, scenario, metric)
        return statistics.median(values) if values else None

    def saturated(self, system: str) -> bool:
        """True if the system could not keep up with the latency scenario's offered load."""
        return any(
            line["details"].get("saturated")
            for line in self.lines
            if line["system"] == system and line["scenario"] == "latency" and line["valid"]
        )

    def counts(self, system: str, scenarios: Iterable[str] | None = None) -> tuple[int, int]:
        """Valid and applicable results of ``system`` (in ``scenarios``, if given)."""
        wanted = None if scenarios is None else set(scenarios)
        mine = [
            line
            for line in self.lines
            if line["system"] == system
            and applicable(line)
            and (wanted is None or line["scenario"] in wanted)
        ]
        return sum(1 for line in mine if line["valid"]), len(mine)

    def per_job_us(self, system: str, cores_metric: str) -> float | None:
        """Median over burn-downs of a ``*_cores`` metric as CPU microseconds per job."""
        values = [
            line["metrics"][cores_metric] / line["metrics"]["jobs_per_s"] * 1e6
            for line in self.lines
            if line["system"] == system
            and line["scenario"] == "burndown"
            and line["valid"]
            and cores_metric in line["metrics"]
        ]
        return statistics.median(values) if values else None

    def ratio(self, system: str, other: str, scenario: str) -> float | None:
        mine = self.median(system, scenario, "jobs_per_s")
        theirs = self.median(other, scenario, "jobs_per_s")
        if mine is None or theirs is None or theirs == 0:
            return None
        return mine / theirs


def applicable(line: dict[str, Any]) -> bool:
    """False for the line of a scenario that does not apply to its system (nothing ran)."""
    return bool(line.get("applicable", True))


def markdown(lines: Sequence[dict[str, Any]], unavailable: Iterable[str] = ()) -> str:
    summary = Summary(lines)
    first = lines[0]
    out = ["# Benchmark results", "", *_header(first, lines, list(unavailable)), ""]
    if any(line["scenario"] != "io" and applicable(line) for line in lines):
        out += _main_sections(summary, first)
    if any(line["scenario"] == "io" for line in lines):
        out += ["## I/O-bound jobs", "", *_io_table(summary), ""]
        out += [
            f"Jobs wait {first['params']['io_wait']:g} s each (`asyncio.sleep` on asyncio "
            "systems, `time.sleep` in threads). The ideal rate is concurrency (jobs in "
            "flight over all worker processes) divided by that wait. Jobs/s runs from go "
            "until the table is empty; the steady rate is between a tenth and nine tenths "
            "of the jobs done, without the start and the last writes. First job: from go "
            "until the first job began its wait; last write: from the last job done until "
            "the table was seen empty. Medians over the repetitions, ranges in brackets.",
            "",
        ]
    invalid = [line for line in lines if not line["valid"] and applicable(line)]
    if invalid:
        out += ["## Invalid results", ""]
        for line in invalid:
            reason = (line["reason"] or "").splitlines()[0]
            out.append(f"- rep {line['rep']} {line['system']} {line['scenario']}: {reason}")
        out.append("")
    skipped = {
        (line["system"], line["scenario"]): line["reason"] for line in lines if not applicable(line)
    }
    if skipped:
        out += ["## Not applicable", ""]
        for (system, scenario), reason in skipped.items():
            out.append(f"- {system} {scenario}: {reason}")
        out.append("")
    out += ["## Settings", "", *_settings(lines), ""]
    return "\n".join(out)


def _main_sections(summary: Summary, first: dict[str, Any]) -> list[str]:
    """Medians, ratios, targets and the CPU table of the scenarios other than io."""
    lines = summary.lines
    out = ["## Medians", "", *_medians_table(summary), ""]
    out += [
        "Each cell is the median of the valid repetitions, with their range in brackets.",
        "Throughput is jobs per second (higher is better); latency and RSS lower is better.",
        "Latency runs from the start of the enqueue call to the start of the work function.",
    ]
    if any(summary.saturated(system) for system in summary.systems):
        out.append(
            "† in at least one repetition the workers could not keep up with the offered "
            "load (a backlog was left when the producer stopped): that latency is queueing, "
            "not wake-up."
        )
    out.append("")
    out += ["## Ratios (medians of this run)", "", *_ratio_table(summary), ""]
    out += ["## Targets", "", *_targets_table(summary), ""]
    if any("worker_cores" in line["metrics"] for line in lines):
        cores = first["env"]["cores"]
        out += ["## Burn-down: where the CPU went", "", *_cpu_table(summary, cores), ""]
        out += [
            "Medians over the repetitions. CPU per job: the worker processes' (`getrusage`) "
            "and their database sessions' (from /proc). Cores: CPU seconds per second of the "
            "burn-down, for the workers, the PostgreSQL server (postmaster and all its "
            "children; other databases on the server count too), of that the sessions of the "
            "benchmark's database, the harness (it polls progress and the table), and the "
            f"busy time of all {cores} cores (/proc/stat: everything, the machine's other work "
            "and the kernel included).",
            "",
        ]
    return out


def _header(
    first: dict[str, Any], lines: Sequence[dict[str, Any]], unavailable: list[str]
) -> list[str]:
    env = first["env"]
    pg = env["postgresql"]
    packages = ", ".join(
        f"{name} {version}" for name, version in env["packages"].items() if version is not None
    )
    reps = 1 + max(line["rep"] for line in lines)
    capped = sorted(
        {
            f"{line['system']} {line['details']['jobs']:,}"
            for line in lines
            if line["scenario"] == "burndown"
            and line["details"].get("jobs", first["params"]["jobs"]) != first["params"]["jobs"]
        }
    )
    cap_note = f" ({'; '.join(capped)}: see Settings)" if capped else ""
    params = first["params"]
    date = first["time"][:16].replace("T", " ") + " UTC"
    workload = (
        f"burn-down of {params['jobs']:,} jobs{cap_note} "
        f"(bulk enqueue in batches of {params['batch']:,}); {params['single_jobs']:,} single "
        f"enqueues; latency at {params['rate']:g} jobs/s for {params['latency_seconds']:g} s"
    )
    scenarios = {line["scenario"] for line in lines}
    if "io" in scenarios:
        io_work = (
            f"I/O-bound burn-down of {params['io_jobs']:,} jobs waiting "
            f"{params['io_wait']:g} s each"
        )
        workload = io_work if scenarios == {"io"} else f"{workload}; {io_work}"
    header = [
        f"- **Date:** {date} (run `{first['run_id']}`)",
        f"- **Machine:** {env['cpu_model']}, {env['cores']} cores, {env['memory_gb']} GB RAM, "
        f"{env['os']}",
        f"- **PostgreSQL:** {pg['server_version']} (synchronous_commit={pg['synchronous_commit']}, "
        f"fsync={pg['fsync']}, shared_buffers={pg['shared_buffers']}, "
        f"autovacuum={pg.get('autovacuum', 'not recorded')}), same server for all",
        f"- **Python:** {env['python']}; **packages:** {packages}; que commit "
        f"`{env.get('que_commit')}`",
        f"- **Command:** `{first['command']}`",
        f"- **Workload:** {reps} repetitions; {workload}",
    ]
    loads = [line["loadavg_1m"] for line in lines if "loadavg_1m" in line]
    if loads:
        header.append(
            f"- **Machine load:** 1-minute load average {statistics.median(loads):.1f} "
            f"(median; {min(loads):.1f} to {max(loads):.1f}), this benchmark's own share about 2"
        )
    header.append(
        "- **Validity:** a result counts only if every job ran exactly once "
        "(sequence numbers recorded by the work function, summed over worker processes)"
    )
    for note in unavailable:
        header.append(f"- **Not available:** {note}")
    return header


def _medians_table(summary: Summary) -> list[str]:
    titles = [title for _, _, title, _ in COLUMNS]
    rows = [
        "| system | " + " | ".join(titles) + " | valid results |",
        "|---" + "|---:" * (len(titles) + 1) + "|",
    ]
    for system in summary.systems:
        cells = []
        for scenario, metric, _, _ in COLUMNS:
            values = summary.values(system, scenario, metric)
            if not values:
                cells.append("—")
                continue
            mid = statistics.median(values)
            spread = f" ({_num(min(values))} to {_num(max(values))})" if len(values) > 1 else ""
            mark = " †" if scenario == "latency" and summary.saturated(system) else ""
            cells.append(_num(mid) + spread + mark)
        valid, total = summary.counts(system, (scenario for scenario, *_ in COLUMNS))
        rows.append(f"| {system} | " + " | ".join(cells) + f" | {valid}/{total} |")
    return rows


def _io_table(summary: Summary) -> list[str]:
    heads = [
        "concurrency",
        "ideal jobs/s",
        "jobs/s",
        "% of ideal",
        "steady jobs/s",
        "steady % of ideal",
        "first job s",
        "last write s",
        "worker CPU µs/job",
        "worker cores",
        "machine cores busy",
        f"≥ {IO_TARGET:.0%} of ideal",
        "valid results",
    ]
    rows = ["| system | " + " | ".join(heads) + " |", "|---" + "|---:" * len(heads) + "|"]
    for system in summary.systems:
        mine = [line for line in summary.lines if line["system"] == system]
        ran = [line for line in mine if line["scenario"] == "io" and applicable(line)]
        if not ran:
            if any(line["scenario"] == "io" for line in mine):
                rows.append(f"| {system} | n/a (see Not applicable) |" + " |" * (len(heads) - 1))
            continue
        details = ran[0]["details"]
        ideal = summary.median(system, "io", "ideal_jobs_per_s")
        cells = [
            f"{details.get('concurrency', '?'):,}" if "concurrency" in details else "?",
            "—" if ideal is None else _num(ideal),
            _spread(summary.values(system, "io", "jobs_per_s")),
            _spread(summary.values(system, "io", "fraction_of_ideal"), percent=True),
            _spread(summary.values(system, "io", "steady_jobs_per_s")),
            _spread(summary.values(system, "io", "steady_fraction_of_ideal"), percent=True),
        ]
        for metric in (
            "first_job_s",
            "last_write_s",
            "worker_cpu_us_per_job",
            "worker_cores",
            "machine_cores",
        ):
            value = summary.median(system, "io", metric)
            cells.append("—" if value is None else _num(value))
        fraction = summary.median(system, "io", "fraction_of_ideal")
        cells.append(
            "n/a"
            if fraction is None
            else f"{'met' if fraction >= IO_TARGET else '**missed**'} ({fraction:.0%})"
        )
        valid, total = summary.counts(system, ("io",))
        cells.append(f"{valid}/{total}")
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return rows


def _spread(values: list[float], *, percent: bool = False) -> str:
    """The median of ``values`` with their range, as a number or a percentage."""
    if not values:
        return "—"

    def show(value: float) -> str:
        return f"{value:.0%}" if percent else _num(value)

    mid = statistics.median(values)
    if len(values) == 1:
        return show(mid)
    return f"{show(mid)} ({show(min(values))} to {show(max(values))})"


def _ratio_table(summary: Summary) -> list[str]:
    others = [name for name in (*PEERS, BASELINE) if name in summary.systems]
    if not others:
        return ["No peer or baseline ran, so there is nothing to compare with."]
    heads = []
    for _, title in RATIO_ROWS:
        for other in others:
            heads.append(f"{title} % of raw SQL" if other == BASELINE else f"{title} x {other}")
    rows = ["| system | " + " | ".join(heads) + " |", "|---" + "|---:" * len(heads) + "|"]
    for system in summary.systems:
        cells = []
        for scenario, _ in RATIO_ROWS:
            for other in others:
                value = summary.ratio(system, other, scenario)
                if value is None:
                    cells.append("—")
                elif other == BASELINE:
                    cells.append(f"{value * 100:.0f}%")
                else:
                    cells.append(f"{value:.2f}x")
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return rows


def _targets_table(summary: Summary) -> list[str]:
    ours = [name for name in summary.systems if name.startswith("que")]
    if not ours:
        return ["None of this library's runners ran."]
    heads = [
        "burn-down ≥ 2x pgqueuer",
        "burn-down ≥ 20x procrastinate",
        "burn-down % of raw SQL",
        "bulk enqueue ≥ 150,000/s",
        "p50 ≤ 5 ms",
        "p99 ≤ 25 ms",
        "RSS ≤ 60 MB",
        "urgent job p99 ≤ 10 ms",
    ]
    rows = ["| system | " + " | ".join(heads) + " |", "|---" + "|---" * len(heads) + "|"]
    for system in ours:
        cells = [
            _target(summary.ratio(system, "pgqueuer", "burndown"), 2.0, True, "x"),
            _target(summary.ratio(system, "procrastinate", "burndown"), 20.0, True, "x"),
            _fraction(summary.ratio(system, BASELINE, "burndown")),
            _target(summary.median(system, "enqueue_bulk", "jobs_per_s"), 150_000, True, "/s"),
            _target(summary.median(system, "latency", "p50_ms"), 5.0, False, " ms"),
            _target(summary.median(system, "latency", "p99_ms"), 25.0, False, " ms"),
            _target(summary.median(system, "rss", "peak_rss_mb"), 60.0, False, " MB"),
            _target(summary.median(system, "priority", "p99_ms"), 10.0, False, " ms"),
        ]
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return rows


def _cpu_table(summary: Summary, cores: int) -> list[str]:
    """Burn-down rate and CPU per system; variants also against their system's first variant."""
    varied = any("." in system for system in summary.systems)
    heads = ["burn-down jobs/s", *(["x first variant"] if varied else [])]
    heads += [
        "worker CPU µs/job",
        "its database sessions' CPU µs/job",
        "worker cores",
        "PostgreSQL cores",
        "of which this database's sessions",
        "harness cores",
        f"machine cores busy (of {cores})",
    ]
    rows = ["| system | " + " | ".join(heads) + " |", "|---" + "|---:" * len(heads) + "|"]
    firsts: dict[str, str] = {}
    for system in summary.systems:
        base = system.partition(".")[0]
        rate = summary.median(system, "burndown", "jobs_per_s")
        cells = ["—" if rate is None else _num(rate)]
        if varied:
            if "." in system:
                first = firsts.setdefault(base, system)
                ratio = summary.ratio(system, first, "burndown")
                cells.append("—" if ratio is None else f"{ratio:.2f}x")
            else:
                cells.append("")
        for metric in CPU_METRICS:
            value = summary.median(system, "burndown", metric)
            cells.append("—" if value is None else _num(value))
            if metric == "worker_cpu_us_per_job":
                value = summary.per_job_us(system, "backend_cores")
                cells.append("—" if value is None else _num(value))
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return rows


def _target(value: float | None, goal: float, higher: bool, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    met = value >= goal if higher else value <= goal
    shown = f"{value:.2f}" if unit == "x" else _num(value)
    return f"{'met' if met else '**missed**'} ({shown}{unit})"


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _settings(lines: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, dict[str, Any]] = {}
    for line in lines:
        seen.setdefault(line["system"], line["settings"])
    return [
        f"- `{system}`: " + ", ".join(f"{key}={value}" for key, value in settings.items())
        for system, settings in seen.items()
    ]


def _num(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def write_markdown(path: Path, text: str) -> None:
    path.write_text(text + "\n")


def update_readme(path: Path, text: str, results_name: str) -> bool:
    """Put the medians and targets between the README's result markers; False if it has none."""
    if not path.exists():
        return False
    readme = path.read_text()
    start, end = readme.find(RESULTS_START), readme.find(RESULTS_END)
    if start < 0 or end < start:
        return False
    body = text.split("\n", 2)[2]
    for later in ("## Invalid results", "## Not applicable", "## Settings"):
        body = body.split(later, maxsplit=1)[0]
    body = body.replace("## ", "### ").rstrip()
    link = f"Full table and settings: [{results_name}]({results_name})."
    block = f"{RESULTS_START}\n{body}\n\n{link}\n"
    path.write_text(readme[:start] + block + readme[end:])
    return True

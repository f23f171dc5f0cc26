"""``python -m bench``: run the side-by-side benchmark, or re-report a results file."""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import report
from bench.harness import Plan, run
from bench.scenarios import OPT_IN, SCENARIOS, Params
from bench.snapshot import compile_que, use_revision
from bench.systems import system_classes
from bench.systems.base import System

HERE = Path(__file__).resolve().parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
QUICK = {"reps": 1, "jobs": 5_000, "single_jobs": 500, "latency_seconds": 3.0, "io_jobs": 5_000}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # A plain exit on SIGTERM, so that worker processes are stopped and the
    # benchmark databases dropped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.que_commit:
        commit = use_revision(args.que_commit)
        print(f"benchmarking que as of commit {commit}", file=sys.stderr)
    classes = system_classes()
    if args.list:
        for name, cls in classes.items():
            note = cls().unavailable()
            flags = "" if cls.default else "  [opt-in]"
            flags += f"  [not available: {note}]" if note else ""
            print(f"{name:<18} {cls.label}{flags}")
        return 0
    if args.report:
        lines = report.load(args.report, args.run_id)
        _publish(args, lines, [])
        return 0

    for key, value in QUICK.items():
        if args.quick and getattr(args, key) is None:
            setattr(args, key, value)
    params = Params(
        **{
            key: getattr(args, key)
            for key in (
                "jobs",
                "single_jobs",
                "batch",
                "rate",
                "latency_seconds",
                "io_jobs",
                "io_wait",
                "timeout",
            )
            if getattr(args, key) is not None
        }
    )
    overrides = _overrides(args.set, classes)
    variants = _variants(args.vary, classes)
    systems: list[System] = []
    unavailable: list[str] = []
    chosen = [name for name, cls in classes.items() if cls.default]
    for name in _names(args.systems, list(classes), "system") if args.systems else chosen:
        system = classes[name](overrides.get(name))
        reason = system.unavailable()
        if reason:
            print(f"{name}: not available ({reason}); skipped", file=sys.stderr)
            unavailable.append(f"{name} ({reason})")
        elif name in variants:
            key, values = variants[name]
            for value in values:
                settings = {**overrides.get(name, {}), key: value}
                systems.append(classes[name](settings, variant=f"{key}={value}"))
        else:
            systems.append(system)
    if not systems:
        print("no system to run", file=sys.stderr)
        return 2
    if params.io_wait <= 0:
        raise SystemExit(f"--io-wait must be positive, not {params.io_wait:g}")
    if any(system.name.startswith("que_") for system in systems):
        compile_que()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or HERE / "results" / f"{'quick' if args.quick else 'run'}-{stamp}.jsonl"
    plan = Plan(
        url=args.url,
        systems=systems,
        scenarios=(
            _names(args.scenarios, list(SCENARIOS), "scenario")
            if args.scenarios
            else [name for name in SCENARIOS if name not in OPT_IN]
        ),
        reps=args.reps if args.reps is not None else 3,
        params=params,
        out=out,
        command="python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
    )
    lines = run(plan)
    _publish(args, lines, unavailable)
    return 0 if all(line["valid"] or not line.get("applicable", True) for line in lines) else 1


def _publish(args: argparse.Namespace, lines: list[dict[str, Any]], unavailable: list[str]) -> None:
    text = report.markdown(lines, unavailable)
    print(text)
    if args.quick and args.results_md is None:
        print("\n(--quick: bench/RESULTS.md left as it was; pass --results-md to write one)")
        return
    target: Path = args.results_md or HERE / "RESULTS.md"
    report.write_markdown(target, text)
    print(f"\nwrote {target}", file=sys.stderr)
    if target == HERE / "RESULTS.md" and report.update_readme(
        HERE / "README.md", text, target.name
    ):
        print(f"updated the table in {HERE / 'README.md'}", file=sys.stderr)


def _names(given: str | None, known: list[str], what: str) -> list[str]:
    if given is None:
        return known
    names = [name.strip() for name in given.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def _overrides(pairs: list[str], classes: dict[str, type[System]]) -> dict[str, dict[str, Any]]:
    """``--set system.key=value`` pairs as {system: {key: value}}; values are Python literals."""
    found: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        target, sep, raw = pair.partition("=")
        system, dot, key = target.partition(".")
        if not sep or not dot or system not in classes:
            raise SystemExit(f"--set takes SYSTEM.KEY=VALUE with a known system, not {pair!r}")
        found.setdefault(system, {})[key] = _literal(raw)
    return found


def _variants(
    pairs: list[str], classes: dict[str, type[System]]
) -> dict[str, tuple[str, list[Any]]]:
    """``--vary system.key=v1,v2`` as {system: (key, [v1, v2])}; values are Python literals."""
    found: dict[str, tuple[str, list[Any]]] = {}
    for pair in pairs:
        target, sep, raw = pair.partition("=")
        system, dot, key = target.partition(".")
        if not sep or not dot or system not in classes or not raw:
            raise SystemExit(
                f"--vary takes SYSTEM.KEY=VALUE,VALUE... with a known system, not {pair!r}"
            )
        if system in found:
            raise SystemExit(f"--vary: {system} is already varied by {found[system][0]}")
        if key not in classes[system].defaults:
            raise SystemExit(
                f"--vary: {system} has no setting {key}; it has "
                f"{', '.join(sorted(classes[system].defaults))}"
            )
        found[system] = (key, [_literal(text.strip()) for text in raw.split(",")])
    return found


def _literal(text: str) -> Any:
    """A Python literal (``4``, ``None``, ``0.5``), or the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Side-by-side benchmark of que against pgqueuer, procrastinate and raw SQL.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
        help="postgresql:// URL of a database whose user may create databases "
        "(default: $BENCH_DATABASE_URL, else %(default)s)",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3; --quick: 1)")
    parser.add_argument("--jobs", type=int, help="burn-down jobs (default 50000; --quick: 5000)")
    parser.add_argument(
        "--single-jobs", type=int, help="jobs enqueued one by one (default 2000; --quick: 500)"
    )
    parser.add_argument("--batch", type=int, help="jobs per bulk enqueue statement (default 5000)")
    parser.add_argument(
        "--rate", type=float, help="latency scenario's offered jobs/s (default 200)"
    )
    parser.add_argument(
        "--latency-seconds", type=float, help="latency scenario's duration (default 10; --quick: 3)"
    )
    parser.add_argument(
        "--io-jobs", type=int, help="io scenario's jobs (default 20000; --quick: 5000)"
    )
    parser.add_argument(
        "--io-wait", type=float, help="seconds each job of the io scenario waits (default 0.05)"
    )
    parser.add_argument("--timeout", type=float, help="seconds one phase may take (default 900)")
    parser.add_argument(
        "--systems",
        help="comma-separated systems (default: every available one not marked opt-in by --list)",
    )
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated, of {', '.join(SCENARIOS)} "
        f"(default: all but {', '.join(sorted(OPT_IN))}, which runs only when named)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SYSTEM.KEY=VALUE",
        help="override a system setting, e.g. pgqueuer.batch_size=100 (repeatable)",
    )
    parser.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="SYSTEM.KEY=VALUE,VALUE...",
        help="run SYSTEM once per value of one setting, each reported as SYSTEM.KEY=VALUE, "
        "e.g. que_batched_sync.processes=1,2,4,8 (repeatable, one setting per system)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, one repetition; leaves RESULTS.md alone"
    )
    parser.add_argument(
        "--out", type=Path, help="results file (JSON lines; default bench/results/)"
    )
    parser.add_argument(
        "--results-md",
        type=Path,
        help="where to write the Markdown summary (default bench/RESULTS.md)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS.jsonl",
        help="do not run: summarise a results file (its last run, or --run-id)",
    )
    parser.add_argument("--run-id", help="with --report: which run of the file")
    parser.add_argument(
        "--que-commit",
        metavar="REV",
        help="benchmark que's src/ as committed at REV (e.g. HEAD), not the work tree",
    )
    parser.add_argument("--list", action="store_true", help="list the systems and exit")
    return parser

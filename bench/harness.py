"""Runs the plan: repetitions x scenarios x systems, in alternation, one JSON line per result."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg

from bench import machine
from bench.pg import fresh_database
from bench.scenarios import FAILURES, SCENARIOS, Measurement, Params, Run
from bench.systems.base import System

SCHEMA = 1


@dataclass(frozen=True)
class Plan:
    url: str
    systems: Sequence[System]
    scenarios: Sequence[str]
    reps: int
    params: Params
    out: Path
    command: str


def run(plan: Plan) -> list[dict[str, Any]]:
    """Run every (repetition, scenario, system) once; return the result lines written."""
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    packages = {"psycopg"} | {name for system in plan.systems for name in system.packages}
    env = machine.describe(plan.url, packages)
    logs = Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-"))
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    _say(
        f"run {run_id}: {len(plan.systems)} systems x {len(plan.scenarios)} scenarios x "
        f"{plan.reps} reps; results -> {plan.out}; worker logs -> {logs}"
    )
    lines: list[dict[str, Any]] = []
    with plan.out.open("a") as out:
        for rep in range(plan.reps):
            for scenario in plan.scenarios:
                # Rotate the order every repetition so that no system always runs
                # first (or last) on a machine whose speed drifts.
                shift = rep % len(plan.systems)
                order = [*plan.systems[shift:], *plan.systems[:shift]]
                for system in order:
                    label = f"{system.run_name}-{scenario}-{rep}"
                    started = time.perf_counter()
                    measurements = _run_one(plan, system, scenario, logs, label)
                    elapsed = time.perf_counter() - started
                    for measurement in measurements:
                        line = _line(run_id, plan, system, rep, measurement, env)
                        out.write(json.dumps(line, separators=(",", ":")) + "\n")
                        out.flush()
                        lines.append(line)
                        _say(_brief(line, elapsed))
    return lines


def _run_one(
    plan: Plan, system: System, scenario: str, logs: Path, label: str
) -> list[Measurement]:
    func, produces = SCENARIOS[scenario]
    skip = system.not_applicable(scenario)
    if skip is not None:
        return [
            Measurement(name, {}, None, reason=f"not applicable: {skip}", applicable=False)
            for name in produces
        ]
    try:
        with fresh_database(plan.url, label) as url:
            return func(Run(system, url, plan.params, logs, label))
    except (*FAILURES, psycopg.Error) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        return [Measurement(name, {}, None, reason=reason) for name in produces]


def _line(
    run_id: str, plan: Plan, system: System, rep: int, m: Measurement, env: dict[str, Any]
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "system": system.run_name,
        "rep": rep,
        **m.as_dict(),
        # Includes this benchmark's own processes: above ~2.5 on 2 cores, something else ran.
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "settings": system.settings,
        "params": asdict(plan.params),
        "command": plan.command,
        "env": env,
    }


def _brief(line: dict[str, Any], elapsed: float) -> str:
    metrics = ", ".join(f"{k}={v:,.2f}" for k, v in line["metrics"].items())
    if not line.get("applicable", True):
        state = f"n/a ({line['reason']})"
    else:
        state = "ok" if line["valid"] else f"INVALID ({line['reason']})"
    where = f"rep {line['rep']} {line['system']:<18} {line['scenario']:<15}"
    return f"  {where} {state}: {metrics} [{elapsed:.1f}s]"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)

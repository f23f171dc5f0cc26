"""``que schedules``: the periodic jobs an application declares, with their last
and next ticks and the session that leads them; without ``--schedules``, what
que_schedules records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

from ._cli_support import DEFAULT_QUEUE_LABEL, CliError, format_table, relative
from ._extension_base import missing_extension_message
from ._schedule import Schedule, ScheduleStatus
from .client import Client
from .connect import Connector
from .scheduler import Scheduler, recorded_ticks

DECLARED_HEADER = ("NAME", "TIMING", "TYPE", "QUEUE", "LAST TICK", "LAST JOB", "NEXT TICK")
RECORDED_HEADER = ("NAME", "LAST TICK", "LAST JOB")


def run_schedules(
    connector: Connector, schedules: Sequence[Schedule], *, as_json: bool, out: TextIO
) -> int:
    with Client(connector, max_connections=1) as client:
        if client.extension_version < 2:
            raise CliError(missing_extension_message("que schedules", 2))
        if not schedules:
            recorded = recorded_ticks(client)
            if as_json:
                out.write(json.dumps([_recorded_json(row) for row in recorded], indent=2) + "\n")
            else:
                out.write(recorded_text(recorded) + "\n")
            return 0
        scheduler = Scheduler(client, schedules)
        statuses = scheduler.status()
        leader = scheduler.leader()
    if as_json:
        document = {"schedules": [_status_json(s) for s in statuses], "leader": leader}
        out.write(json.dumps(document, indent=2, default=str) + "\n")
    else:
        now = datetime.now(timezone.utc)
        out.write(declared_text(statuses, now) + "\n" + leader_text(leader) + "\n")
    return 0


def declared_text(statuses: Sequence[ScheduleStatus], now: datetime) -> str:
    rows = [
        (
            s.schedule.name,
            s.schedule.describe(),
            s.schedule.type,
            s.schedule.queue or DEFAULT_QUEUE_LABEL,
            "never" if s.last_tick is None else relative(s.last_tick, now),
            "-" if s.last_job_id is None else str(s.last_job_id),
            relative(s.next_tick, now),
        )
        for s in statuses
    ]
    return format_table(DECLARED_HEADER, rows)


def leader_text(leader: dict[str, Any] | None) -> str:
    if leader is None:
        return "leader: none (no worker with these schedules is running)"
    where = leader["client_addr"] or "a local socket"
    return f"leader: database session pid {leader['pid']} from {where}"


def recorded_text(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "no schedule has ticked yet (que_schedules is empty)"
    return format_table(
        RECORDED_HEADER,
        [
            (row["name"], row["last_tick"].isoformat(), str(row["last_job_id"] or "-"))
            for row in rows
        ],
    )


def _status_json(status: ScheduleStatus) -> dict[str, Any]:
    schedule = status.schedule
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "every": None if schedule.every is None else _seconds(schedule.every),
        "timezone": schedule.timezone,
        "type": schedule.type,
        "queue": schedule.queue,
        "priority": schedule.priority,
        "args": list(schedule.args),
        "missed": schedule.missed,
        "last_tick": None if status.last_tick is None else status.last_tick.isoformat(),
        "last_job_id": status.last_job_id,
        "next_tick": status.next_tick.isoformat(),
    }


def _recorded_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "last_tick": row["last_tick"].isoformat(),
        "last_job_id": row["last_job_id"],
        "updated_at": row["updated_at"].isoformat(),
    }


def _seconds(every: Any) -> float:
    return float(every.total_seconds()) if hasattr(every, "total_seconds") else float(every)

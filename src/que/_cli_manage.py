"""``que jobs`` and ``que dead``: inspect jobs and act on them by id;
``que pause`` and ``que resume``: stop and restart the claiming of a queue.

The subcommands are thin: they check their arguments, call ``client.jobs`` /
``client.dead`` on a one-connection Client, and print what
``_cli_manage_output`` formats. Refusals (a running job, an unknown id) are
QueErrors, which ``cli.main`` prints as one line with exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._cli_database import select_database
from ._cli_manage_output import (
    count,
    dead_table,
    describe,
    jobs_table,
    page_json,
    parse_duration,
    record_json,
    show,
)
from ._cli_support import UsageError, local_now, one_line, parse_args_json, parse_run_at
from ._manage_base import DEFAULT_LIMIT, OUTCOMES, STATES
from .client import Client
from .errors import JobNotFoundError, SchemaVersionError

if TYPE_CHECKING:
    from ._cli_parser import _Subcommands


@contextmanager
def _client(args: argparse.Namespace) -> Iterator[Client]:
    database = select_database(
        getattr(args, "database_url", None),
        getattr(args, "embedded", False),
        os.environ,
        notes=sys.stderr,
    )
    with Client(database.connector, max_connections=1) as client:
        yield client


@contextmanager
def _usage() -> Iterator[None]:
    """The library's checks of arguments (ValueError, TypeError) are usage errors here."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise UsageError(one_line(exc)) from exc


# -- que jobs ------------------------------------------------------------------------


def _jobs_list(args: argparse.Namespace) -> int:
    older_than = (
        None if args.older_than is None else parse_duration(args.older_than, "--older-than")
    )
    contain = None
    if args.args_contain is not None:
        contain = parse_args_json(args.args_contain)
    with _client(args) as client, _usage():
        page = client.jobs.list(
            queue=args.queue,
            type=args.type,
            state=args.state,
            older_than=older_than,
            args_contain=contain,
            after=args.after,
            limit=args.limit,
        )
    print(page_json(page, "jobs") if args.json else jobs_table(page, local_now()))
    return 0


def _jobs_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        record = client.jobs.get(args.id)
        if record is None:
            raise _not_in_queue(client, args.id)
    print(record_json(record) if args.json else show(record, local_now()))
    return 0


def _not_in_queue(client: Client, job_id: int) -> JobNotFoundError:
    """Why a job is not in que_jobs: dead (when the extension is there), or gone."""
    try:
        dead = client.dead.get(job_id)
    except SchemaVersionError:
        dead = None
    if dead is None:
        return JobNotFoundError(
            f"job {job_id} is not in que_jobs: it was worked and deleted, or never existed",
            job_id,
        )
    return JobNotFoundError(
        f"job {job_id} is not in que_jobs: it is dead ({dead.outcome}); "
        f"`que dead show {job_id}` shows it",
        job_id,
    )


def _jobs_retry(args: argparse.Namespace) -> int:
    if args.failed == (args.id is not None):
        raise UsageError("give a job ID, or --failed to retry every failed job")
    if not args.failed and (args.type is not None or args.queue is not None):
        raise UsageError("--type and --queue go with --failed")
    with _client(args) as client, _usage():
        if args.failed:
            retried = client.jobs.retry_failed(type=args.type, queue=args.queue)
            filters = describe([("type", args.type), ("queue", args.queue)])
            print(f"retried {count(retried, 'failed job')}{filters}; running jobs were skipped")
            return 0
        record = client.jobs.retry(args.id)
    print(f"job {record.id} is due now ({count(record.error_count, 'error')} so far)")
    return 0


def _jobs_reschedule(args: argparse.Namespace) -> int:
    now = local_now()
    if args.at is not None:
        try:
            run_at = parse_run_at(args.at, now)
        except UsageError:
            raise UsageError(
                f"--at must be an ISO 8601 time such as 2030-01-31T09:00:00+00:00, not {args.at!r}"
            ) from None
    else:
        run_at = now + parse_duration(args.run_in, "--in")
    with _client(args) as client, _usage():
        record = client.jobs.reschedule(args.id, run_at)
    moment = record.run_at.isoformat(sep=" ", timespec="seconds")
    print(f"job {record.id} is due at {moment}")
    return 0


def _jobs_priority(args: argparse.Namespace) -> int:
    with _client(args) as client, _usage():
        record = client.jobs.set_priority(args.id, args.priority)
    print(f"job {record.id} has priority {record.priority}")
    return 0


def _jobs_delete(args: argparse.Namespace) -> int:
    with _client(args) as client, _usage():
        deleted = client.jobs.delete(args.id, wait=args.wait)
    if deleted:
        print(f"deleted job {args.id}")
    else:
        print(f"job {args.id} was finished by its worker while this waited; nothing to delete")
    return 0


def _jobs_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.jobs.cancel(args.id)
    if result == "removed":
        print(
            f"job {args.id} had not started: moved to que_dead_jobs as cancelled "
            f"(`que dead retry {args.id}` brings it back)"
        )
    else:
        print(
            f"job {args.id} is running: asked its worker to cancel it (a Python worker "
            "tells the job, which stops at its next check; Ruby and Go workers ignore "
            "the request and finish it)"
        )
    return 0


# -- que dead ------------------------------------------------------------------------


def _dead_list(args: argparse.Namespace) -> int:
    with _client(args) as client, _usage():
        page = client.dead.list(
            queue=args.queue,
            type=args.type,
            outcome=args.outcome,
            after=args.after,
            limit=args.limit,
        )
    print(page_json(page, "dead_jobs") if args.json else dead_table(page, local_now()))
    return 0


def _dead_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        record = client.dead.get(args.id)
    if record is None:
        raise JobNotFoundError(f"job {args.id} is not in que_dead_jobs", args.id)
    print(record_json(record) if args.json else show(record, local_now()))
    return 0


def _filters(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    return [("type", args.type), ("queue", args.queue), ("outcome", args.outcome)]


def _dead_retry(args: argparse.Namespace) -> int:
    if args.all == (args.id is not None):
        raise UsageError("give a job ID, or --all to retry every dead job (--type, --queue ...)")
    if not args.all and any(value is not None for _, value in _filters(args)):
        raise UsageError("--type, --queue and --outcome go with --all")
    with _client(args) as client, _usage():
        if args.all:
            moved = client.dead.retry_all(type=args.type, queue=args.queue, outcome=args.outcome)
            print(f"moved {count(moved, 'dead job')}{describe(_filters(args))} back to que_jobs")
            return 0
        record = client.dead.retry(args.id)
    print(f"job {record.id} is back in que_jobs, due now, with its error count reset")
    return 0


def _dead_purge(args: argparse.Namespace) -> int:
    older_than = (
        None if args.older_than is None else parse_duration(args.older_than, "--older-than")
    )
    if not args.yes:
        raise UsageError(
            "purging deletes dead jobs for good; add --yes to confirm (`que dead list` shows them)"
        )
    with _client(args) as client, _usage():
        purged = client.dead.purge(
            older_than, type=args.type, queue=args.queue, outcome=args.outcome
        )
    age = "" if args.older_than is None else f" that died over {args.older_than} ago"
    print(f"purged {count(purged, 'dead job')}{describe(_filters(args))}{age}")
    return 0


# -- que pause / que resume -----------------------------------------------------------


def _pause(args: argparse.Namespace) -> int:
    with _client(args) as client, _usage():
        changed = client.pause_queue(args.queue)
    if changed:
        print(
            f"paused queue {args.queue!r}: Python workers claim no new jobs from it "
            "(running jobs finish); Ruby and Go workers ignore pauses"
        )
    else:
        print(f"queue {args.queue!r} was already paused")
    return 0


def _resume(args: argparse.Namespace) -> int:
    with _client(args) as client, _usage():
        changed = client.resume_queue(args.queue)
    if changed:
        print(f"resumed queue {args.queue!r}: workers claim jobs from it again")
    else:
        print(f"queue {args.queue!r} was not paused")
    return 0


def run_action(args: argparse.Namespace) -> int:
    """Run the action of ``que jobs`` or ``que dead`` that was chosen."""
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "jobs": run_action,
    "dead": run_action,
    "pause": _pause,
    "resume": _resume,
}


# -- arguments -----------------------------------------------------------------------


def add_manage_parsers(commands: _Subcommands) -> None:
    """``que jobs ...``, ``que dead ...``, ``que pause`` and ``que resume``."""
    _add_jobs(commands)
    _add_dead(commands)
    _add_pause(commands)
    _add_resume(commands)


def _add_queue_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("queue", metavar="QUEUE", help="the queue's name ('' is the default queue)")


def _add_pause(commands: _Subcommands) -> None:
    p = commands.add(
        "pause",
        "pause a queue: Python workers on every host claim no new jobs from it within "
        "about a second, running jobs finish, and it stays paused (across restarts) until "
        "`que resume`; Ruby and Go workers ignore pauses. Needs the que-pg extension "
        "version 2 (`que migrate`)",
    )
    _add_queue_name(p)


def _add_resume(commands: _Subcommands) -> None:
    p = commands.add("resume", "resume a paused queue: workers claim jobs from it again")
    _add_queue_name(p)


def _actions(
    commands: _Subcommands, name: str, help_text: str
) -> Callable[[str, str, Callable[[argparse.Namespace], int]], argparse.ArgumentParser]:
    parser = commands.add(name, help_text)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(
        action: str, action_help: str, run: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        p = actions.add_parser(
            action, help=action_help, description=action_help, parents=[commands.common]
        )
        p.set_defaults(run=run)
        return p

    return add


def _add_id(p: argparse.ArgumentParser, nargs: Any = None) -> None:
    p.add_argument("id", metavar="ID", type=int, nargs=nargs, help="the job id")


def _add_names(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queue", "-q", default=None, help="only jobs of this queue")
    p.add_argument("--type", "-t", default=None, help="only jobs of this type")


def _add_paging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--after", metavar="CURSOR", default=None, help="the page after CURSOR")
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"jobs per page (default {DEFAULT_LIMIT})",
    )
    p.add_argument("--json", action="store_true", help="print JSON, for scripts")


def _add_jobs(commands: _Subcommands) -> None:
    add = _actions(commands, "jobs", "inspect the jobs in que_jobs and act on one by id")
    p = add("list", "list jobs in key order (queue, priority, run_at, id)", _jobs_list)
    _add_names(p)
    p.add_argument(
        "--state",
        choices=STATES,
        default=None,
        help="ready: due and not running; scheduled: due later; failed: failed at "
        "least once; locked: running (by Python, Ruby or Go workers)",
    )
    p.add_argument(
        "--older-than",
        metavar="DURATION",
        default=None,
        help="only jobs due longer ago than this: 30m, 1h, 2d...",
    )
    p.add_argument(
        "--args-contain",
        metavar="JSON",
        default=None,
        help="only jobs whose args contain this JSON (jsonb @>), e.g. '[{\"user\": 42}]'",
    )
    _add_paging(p)

    p = add("show", "show one job, with its whole last error", _jobs_show)
    _add_id(p)
    p.add_argument("--json", action="store_true", help="print JSON, for scripts")

    p = add("retry", "make a job (or every failed job) due now; error counts are kept", _jobs_retry)
    _add_id(p, nargs="?")
    p.add_argument("--failed", action="store_true", help="retry every failed job instead")
    _add_names(p)

    p = add("reschedule", "make a job due at another time", _jobs_reschedule)
    _add_id(p)
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--at", metavar="ISO8601", default=None, help="when, e.g. 2030-01-31T09:00:00Z"
    )
    when.add_argument(
        "--in", dest="run_in", metavar="DURATION", default=None, help="from now: 10m, 2h, 1d..."
    )

    p = add("priority", "give a job another priority (lower runs sooner)", _jobs_priority)
    _add_id(p)
    p.add_argument("priority", metavar="N", type=int, help="-32768 to 32767")

    p = add("delete", "delete a job that is not running", _jobs_delete)
    _add_id(p)
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        default=None,
        help="if it is running, wait up to this long for its worker to finish, then "
        "delete it if it is still there",
    )

    p = add(
        "cancel",
        "cancel a job: one waiting to run moves to que_dead_jobs; a running one's "
        "worker is asked to stop it",
        _jobs_cancel,
    )
    _add_id(p)


def _add_outcome(p: argparse.ArgumentParser) -> None:
    p.add_argument("--outcome", choices=OUTCOMES, default=None, help="only dead jobs that ended so")


def _add_dead(commands: _Subcommands) -> None:
    add = _actions(
        commands, "dead", "inspect, retry and purge dead jobs (que_dead_jobs, the que-pg extension)"
    )
    p = add("list", "list dead jobs, newest first", _dead_list)
    _add_names(p)
    _add_outcome(p)
    _add_paging(p)

    p = add("show", "show one dead job, with its whole last error", _dead_show)
    _add_id(p)
    p.add_argument("--json", action="store_true", help="print JSON, for scripts")

    p = add(
        "retry",
        "move a dead job (or --all matching ones) back to que_jobs, due now, with its "
        "error count reset",
        _dead_retry,
    )
    _add_id(p, nargs="?")
    p.add_argument("--all", action="store_true", help="every dead job matching the filters")
    _add_names(p)
    _add_outcome(p)

    p = add("purge", "delete dead jobs for good", _dead_purge)
    p.add_argument(
        "--older-than",
        metavar="DURATION",
        default=None,
        help="only those that died longer ago than this: 30d, 12h... (default: all)",
    )
    _add_names(p)
    _add_outcome(p)
    p.add_argument("--yes", action="store_true", help="confirm: purged jobs are gone")

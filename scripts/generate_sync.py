"""Generate que's sync modules from their asyncio sources.

The IO code of que is written once, as asyncio code (``src/que/async_*.py``).
This script derives each sync twin from it and writes it beside the source:

- ``if ASYNC:`` / ``else:`` blocks keep only the ``else`` body (dedented);
  the few places where the faces really differ are written that way. The
  renames below apply there too (so ruff and mypy see defined names in the
  source); the other face's types are reached through ``_acompat``.
- ``async def`` / ``async with`` / ``async for`` lose ``async``; ``await``
  goes; names in RENAMES (classes, modules, dunder methods) are replaced, in
  code, docstrings and comments alike.
- ``ruff`` then sorts the imports, drops the ones only the async face used,
  and formats the result, so a generated file reads like a written one.

Run it after editing an async source; ``--check`` (run by scripts/check.sh
and CI) fails when a generated file differs from what its source gives.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "que"

# async source -> generated sync module
MODULES = {
    "async_job_handle.py": "job_handle.py",
    "async_connections.py": "connections.py",
    "async_schema.py": "schema.py",
    "async_client.py": "client.py",
    "async_worker.py": "worker.py",
    "async_claimer.py": "claimer.py",
    "async_engine.py": "engine.py",
    "async_cancel.py": "cancel.py",
    "async_manage.py": "manage.py",
    "async_scheduler.py": "scheduler.py",
    "async_unique.py": "unique.py",
    "async_drain.py": "drain.py",
    "async_pause.py": "pause.py",
    "async_drivers.py": "drivers.py",
}

RENAMES = {
    # modules
    "_acompat": "_compat",
    "async_job_handle": "job_handle",
    "async_connections": "connections",
    "async_schema": "schema",
    "async_client": "client",
    "async_worker": "worker",
    "async_claimer": "claimer",
    "async_engine": "engine",
    "async_cancel": "cancel",
    "async_manage": "manage",
    "async_scheduler": "scheduler",
    "async_unique": "unique",
    "async_drain": "drain",
    "async_pause": "pause",
    "async_drivers": "drivers",
    "que.async_worker": "que.worker",
    "que.async_engine": "que.engine",
    # classes and functions
    "AsyncClient": "Client",
    "AsyncJob": "Job",
    "AsyncJobHandle": "JobHandle",
    "AsyncConnections": "Connections",
    "AsyncWorker": "Worker",
    "AsyncWorkerPool": "WorkerPool",
    "AsyncClaimer": "Claimer",
    "AsyncBatchWorker": "BatchWorker",
    "AsyncCancelWatch": "CancelWatch",
    "AsyncEngineJob": "EngineJob",
    "AsyncJobs": "Jobs",
    "AsyncDeadJobs": "DeadJobs",
    "AsyncScheduler": "Scheduler",
    "AsyncPauses": "Pauses",
    "AsyncConnection": "Connection",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncCursor": "Cursor",
    "AsyncIterator": "Iterator",
    "AsyncWorkFunc": "WorkFunc",
    "AnyAsyncPool": "AnyPool",
    "AsyncStatements": "Statements",
    "AsyncPsycopgStatements": "PsycopgStatements",
    "AsyncSQLAlchemyStatements": "SQLAlchemyStatements",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "asynccontextmanager": "contextmanager",
    "aclosing": "closing",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "current_version_async": "current_version",
    "check_version_async": "check_version",
    "migrate_async": "migrate",
    "install_notify_async": "install_notify",
    "uninstall_notify_async": "uninstall_notify",
    "notify_installed_async": "notify_installed",
    "extension_version_async": "extension_version",
    "migrate_extension_async": "migrate_extension",
    "prepare_statements_async": "prepare_statements",
    "drain_async": "drain",
    "advance_async": "advance",
}

# Only in docstrings and comments: how the async face's prose reads on the sync one.
PHRASES = {"async with": "with", "async for": "for", "awaited": "called", "`await ": "`"}

HEADER = "# Generated from {source} by scripts/generate_sync.py: edit that file, not this one.\n"

_WORD = re.compile(
    "|".join(rf"(?<![\w-]){re.escape(name)}(?![\w-])" for name in sorted(RENAMES, key=len)[::-1])
)
_PHRASE = re.compile(
    "|".join(
        (r"(?<!\w)" if p[0].isalnum() else "")
        + re.escape(p)
        + (r"(?!\w)" if p[-1].isalnum() else "")
        for p in PHRASES
    )
)
_IF_ASYNC = re.compile(r"^(\s*)if ASYNC:\s*(#.*)?$")


def generate(source: Path) -> str:
    """The sync module made from one async source file."""
    text = source.read_text()
    text = _rewrite_tokens(_keep_sync_branches(text))
    return HEADER.format(source=source.name) + _ruff(text, source.with_name(MODULES[source.name]))


def _keep_sync_branches(text: str) -> str:
    """Replace each ``if ASYNC:`` block with the body of its ``else:``, dedented."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _IF_ASYNC.match(line)
        if match is None:
            out.append(line)
            i += 1
            continue
        indent = match.group(1)
        i = _skip_block(lines, i + 1, indent)
        j = i
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and lines[j].rstrip() == f"{indent}else:":
            end = _skip_block(lines, j + 1, indent)
            out.extend(_dedent(lines[j + 1 : end], indent))
            i = end
    return "".join(out)


def _skip_block(lines: list[str], start: int, indent: str) -> int:
    """The index of the first line after the block that starts at ``start``."""
    i = start
    while i < len(lines):
        line = lines[i]
        if line.strip() and not line.startswith(indent + " "):
            break
        i += 1
    while i > start and not lines[i - 1].strip():
        i -= 1  # blank lines after a block belong to what follows
    return i


def _dedent(block: list[str], indent: str) -> list[str]:
    deeper = indent + "    "
    return [
        line[len(deeper) - len(indent) :] if line.startswith(deeper) else line for line in block
    ]


def _rewrite_tokens(text: str) -> str:
    """Drop async/await keywords and rename names; strings and comments keep their words
    but have the renames applied."""
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, int, int, str]] = []  # start row/col, end row/col, new text
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    for index, tok in enumerate(tokens):
        (srow, scol), (erow, ecol) = tok.start, tok.end
        if tok.type == tokenize.NAME and tok.string in ("async", "await"):
            following = tokens[index + 1]
            if tok.string == "async" and following.string not in ("def", "with", "for"):
                continue
            # Remove the keyword and the space after it.
            edits.append((srow, scol, following.start[0], following.start[1], ""))
        elif tok.type == tokenize.NAME and tok.string in RENAMES:
            edits.append((srow, scol, erow, ecol, RENAMES[tok.string]))
        elif tok.type in (tokenize.STRING, tokenize.COMMENT):
            renamed = _WORD.sub(lambda m: RENAMES[m.group(0)], tok.string)
            renamed = _PHRASE.sub(lambda m: PHRASES[m.group(0)], renamed)
            if renamed != tok.string:
                edits.append((srow, scol, erow, ecol, renamed))
    for srow, scol, erow, ecol, new in reversed(edits):
        head = lines[srow - 1][:scol]
        tail = lines[erow - 1][ecol:]
        lines[srow - 1 : erow] = [head + new + tail]
    return "".join(lines)


def _ruff(text: str, target: Path) -> str:
    name = str(target.relative_to(ROOT))
    ruff = [sys.executable, "-m", "ruff"]
    fixed = subprocess.run(
        [*ruff, "check", "--quiet", "--fix-only", "--select", "I,F401", "--stdin-filename", name],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return subprocess.run(
        [*ruff, "format", "--quiet", "--stdin-filename", name, "-"],
        input=fixed,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout


def main(argv: list[str] | None = None) -> int:
    if sys.version_info[:2] != (3, 11):
        # Python 3.12 tokenizes f-strings into parts, which would leave their
        # text unrenamed: the output is defined by 3.11's tokenizer.
        print("scripts/generate_sync.py runs on Python 3.11 (.venv/bin/python)", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if a generated file is stale; write nothing"
    )
    args = parser.parse_args(argv)
    stale = []
    for source_name, target_name in MODULES.items():
        source, target = PACKAGE / source_name, PACKAGE / target_name
        if not source.exists():
            continue
        wanted = generate(source)
        current = target.read_text() if target.exists() else ""
        if wanted == current:
            continue
        stale.append(target_name)
        if not args.check:
            target.write_text(wanted)
            print(f"wrote src/que/{target_name}")
    if args.check and stale:
        print(
            "stale generated files (run python scripts/generate_sync.py): " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

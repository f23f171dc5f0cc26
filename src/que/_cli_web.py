"""``que web``: serve the dashboard (que.web) with uvicorn, safe by default."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence

from ._cli_support import CliError, UsageError
from ._schedule import Schedule
from .connect import Connector

WEB_MODULES = ("starlette", "uvicorn", "jinja2")


def missing_web_extra() -> str | None:
    """Why ``que web`` cannot run here (None: it can)."""
    missing = [name for name in WEB_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"que web needs the web extra ({', '.join(missing)} not installed): "
        "pip install 'que-pg[web]'"
    )


def run_web(
    connector: Connector,
    *,
    host: str,
    port: int,
    refresh: float,
    environ: Mapping[str, str],
    schedules: Sequence[Schedule] = (),
) -> int:
    problem = missing_web_extra()
    if problem is not None:
        raise CliError(problem)
    if not 0 < port < 65536:
        raise UsageError(f"--port must be 1 to 65535, not {port}")
    if refresh < 0:
        raise UsageError(f"--refresh takes seconds (0 or more), not {refresh}")
    import uvicorn

    from .web import auth_from_env, create_app
    from .web._security import bind_problem

    try:
        auth = auth_from_env(environ)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    refused = bind_problem(host, auth)
    if refused is not None:
        raise UsageError(refused)
    app = create_app(database_url=connector, auth=auth, refresh=refresh, schedules=schedules)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
    return 0

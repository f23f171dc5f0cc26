"""The dashboard as a Starlette application: pages, actions and /metrics.

Every read and action goes through the library's own calls (``client.jobs``,
``client.dead``, ``client.queue_stats()``, ...), so the dashboard does what
the CLI does. It reads the shared table, so Ruby's and Go's jobs show too.
"""

from __future__ import annotations

import asyncio
import functools
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any, Protocol

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import sql
from .._extension_base import missing_extension_message
from .._manage_base import Page
from .._schedule import Schedule, ScheduleStatus, check_schedules
from ..async_client import AsyncClient
from ..async_scheduler import AsyncScheduler, recorded_ticks
from ..connect import Connector
from ..errors import QueError
from ..health import duration, queue_totals, table_warnings
from ._chart import Sample, Throughput, chart_svg
from ._security import CSRF_COOKIE, CSRF_FIELD, Auth, csrf_ok, new_csrf_token

PAGE_SIZE = 50
STATES = ("ready", "scheduled", "failed", "locked")
OUTCOMES = ("exhausted", "discarded", "cancelled")
DEFAULT_QUEUE_LABEL = "(default)"


class Dashboard:
    """The state one dashboard app keeps: its client (opened on first use, so a
    mounted app works without its own lifespan), templates and samples."""

    def __init__(
        self,
        client: AsyncClient | None,
        database_url: str | Connector | None,
        auth: Auth | None,
        refresh: float,
        schedules: Iterable[Schedule] | None = None,
    ) -> None:
        if client is None and database_url is None:
            raise ValueError("que.web.create_app needs a client or a database_url")
        # Checked here, so that bad schedules fail when the app is made.
        self.schedules = check_schedules(schedules or ())
        self._client = client
        self._owns_client = client is None
        self._database_url = database_url
        self._opening = asyncio.Lock()
        self.auth = auth
        self.refresh = refresh
        self.throughput = Throughput()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("que.web", "templates"),
            autoescape=True,  # every value a job carries is data, never markup
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["queue_label"] = lambda q: DEFAULT_QUEUE_LABEL if q == "" else q
        self.templates.filters["age"] = _age
        self.templates.filters["moment"] = _moment

    async def client(self) -> AsyncClient:
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    assert self._database_url is not None
                    self._client = await AsyncClient.connect(self._database_url, max_connections=4)
        return self._client

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None

    def render(self, request: Request, template: str, **context: Any) -> HTMLResponse:
        token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
        base = request.scope.get("root_path", "").rstrip("/")
        html = self.templates.get_template(template).render(
            base=base,
            csrf_field=CSRF_FIELD,
            csrf=token,
            refresh=self.refresh,
            notice=request.query_params.get("notice"),
            problem=request.query_params.get("problem"),
            now=datetime.now(timezone.utc),
            **context,
        )
        response = HTMLResponse(html)
        if request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(
                CSRF_COOKIE, token, httponly=True, samesite="strict", path=base or "/"
            )
        return response


def _age(value: timedelta | None) -> str:
    return "-" if value is None else duration(value)


def _moment(value: datetime | None) -> str:
    return (
        "-" if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def _dash(request: Request) -> Dashboard:
    dash: Dashboard = request.app.state.dashboard
    return dash


def _url(request: Request, path: str, **params: Any) -> str:
    base = request.scope.get("root_path", "").rstrip("/")
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{base}{path}" + (f"?{query}" if query else "")


# -- pages -------------------------------------------------------------------------


async def queues_page(request: Request) -> Response:
    dash = _dash(request)
    client = await dash.client()
    stats = await client.queue_stats()
    health = await client.table_health()
    async with client.connections.cursor() as cur:
        await cur.execute(sql.JOBS_TABLE_ACTIVITY)
        row = await cur.fetchone()
    paused = await client.paused_queues() if client.extension_version >= 2 else {}
    now = datetime.now(timezone.utc)
    if row is not None and row["deleted"] is not None:
        dash.throughput.add(Sample(row["sampled_at"], int(row["deleted"])))
    rates = dash.throughput.rates()
    return dash.render(
        request,
        "queues.html",
        page="queues",
        totals=queue_totals(stats),
        stats=stats,
        warnings=table_warnings(health),
        chart=chart_svg(rates, now),
        latest_rate=rates[-1][1] if rates else None,
        paused=paused,
        extension=client.extension_version,
    )


async def jobs_page(request: Request) -> Response:
    client = await _dash(request).client()
    filters = _filters(request, "state", "args")
    problem = None
    args_contain = None
    try:
        args_contain = None if filters["args"] is None else json.loads(filters["args"])
    except json.JSONDecodeError as exc:
        problem = f"args filter is not JSON: {exc}"
    jobs = functools.partial(
        client.jobs.list,
        queue=filters["queue"],
        type=filters["type"],
        state=filters["state"],
        args_contain=args_contain,
    )
    return await _listing_page(
        request, "/jobs", "jobs.html", filters, jobs, problem, page="jobs", states=STATES
    )


def _filters(request: Request, *names: str) -> dict[str, str | None]:
    """A list's filters from the query: the queue as given ("" is the default
    queue, absent is every queue), then the type and ``names``, None when empty."""
    q = request.query_params
    return {"queue": q.get("queue"), **{name: q.get(name) or None for name in ("type", *names)}}


class _Listing(Protocol):
    """A client's ``list`` with its filters bound: it reads one page."""

    def __call__(self, *, after: str | None, limit: int) -> Awaitable[Page[Any]]: ...


async def _listing_page(
    request: Request,
    path: str,
    template: str,
    filters: dict[str, str | None],
    listing: _Listing,
    problem: str | None,
    **context: Any,
) -> Response:
    """One page of the jobs or dead jobs, with links to the next and first pages.

    Both lists page the same way (``after`` and ``limit`` in the query, the
    filters carried along in the links); ``listing(after=..., limit=...)``
    reads the page. Filters the listing refuses, or a ``problem`` found before
    it, show on the page instead of the records.
    """
    q = request.query_params
    jobs: Any = ()
    next_cursor = None
    if problem is None:
        try:
            found = await listing(after=q.get("after") or None, limit=_limit(q.get("limit")))
            jobs, next_cursor = found.records, found.next
        except (ValueError, QueError) as exc:
            problem = str(exc)
    next_url = None
    if next_cursor is not None:
        next_url = _url(request, path, **filters, after=next_cursor, limit=q.get("limit"))
    return _dash(request).render(
        request,
        template,
        jobs=jobs,
        filters=filters,
        list_problem=problem,
        next_url=next_url,
        first_url=_url(request, path, **filters) if q.get("after") else None,
        **context,
    )


def _limit(text: str | None) -> int:
    if not text:
        return PAGE_SIZE
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"limit must be a whole number, not {text!r}") from None


async def job_page(request: Request) -> Response:
    dash = _dash(request)
    client = await dash.client()
    job_id = int(request.path_params["job_id"])
    job = await client.jobs.get(job_id)
    if job is None:
        dead = None
        if client.extension_version >= 1:
            dead = await client.dead.get(job_id)
        if dead is not None:
            query = request.url.query  # an action's notice goes along
            target = _url(request, f"/dead/{job_id}") + (f"?{query}" if query else "")
            return RedirectResponse(target, status_code=303)
        return dash.render(request, "missing.html", page="jobs", job_id=job_id, status=404)
    return dash.render(
        request, "job.html", page="jobs", job=job, args_json=_pretty(job.args), dead=False
    )


async def dead_page(request: Request) -> Response:
    client = await _dash(request).client()
    filters = _filters(request, "outcome")
    problem = None
    if client.extension_version < 1:
        problem = missing_extension_message("dead jobs", 1)
    dead = functools.partial(
        client.dead.list, queue=filters["queue"], type=filters["type"], outcome=filters["outcome"]
    )
    return await _listing_page(
        request, "/dead", "dead.html", filters, dead, problem, page="dead", outcomes=OUTCOMES
    )


async def dead_job_page(request: Request) -> Response:
    dash = _dash(request)
    client = await dash.client()
    job_id = int(request.path_params["job_id"])
    job = await client.dead.get(job_id) if client.extension_version >= 1 else None
    if job is None:
        return dash.render(request, "missing.html", page="dead", job_id=job_id)
    return dash.render(
        request, "job.html", page="dead", job=job, args_json=_pretty(job.args), dead=True
    )


async def schedules_page(request: Request) -> Response:
    dash = _dash(request)
    client = await dash.client()
    problem = None
    ticks: list[dict[str, Any]] = []
    declared: list[ScheduleStatus] = []
    leader: dict[str, Any] | None = None
    if client.extension_version < 2:
        problem = missing_extension_message("schedules", 2)
    else:
        ticks = await recorded_ticks(client)
        if dash.schedules:
            # Made to read, never started: it takes no part in the election.
            scheduler = AsyncScheduler(client, dash.schedules)
            declared = await scheduler.status()
            leader = await scheduler.leader()
            names = {s.name for s in dash.schedules}
            ticks = [t for t in ticks if t["name"] not in names]
    return dash.render(
        request,
        "schedules.html",
        page="schedules",
        ticks=ticks,
        declared=declared,
        has_declared=bool(dash.schedules),
        leader=leader,
        list_problem=problem,
    )


def _pretty(args: Any) -> str:
    if isinstance(args, str):
        return args  # args no one could decode stay their text
    return json.dumps(args, indent=2, ensure_ascii=False)


# -- actions -----------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in urllib.parse.parse_qs(body).items()}


Action = Callable[[AsyncClient, int], Awaitable[str]]


async def _retry(client: AsyncClient, job_id: int) -> str:
    await client.jobs.retry(job_id)
    return f"job {job_id} will run now"


async def _delete(client: AsyncClient, job_id: int) -> str:
    await client.jobs.delete(job_id)
    return f"job {job_id} deleted"


async def _cancel(client: AsyncClient, job_id: int) -> str:
    result = await client.jobs.cancel(job_id)
    if result == "removed":
        return f"job {job_id} cancelled: moved to the dead jobs"
    return f"job {job_id} is running: its worker was asked to stop it"


async def _retry_dead(client: AsyncClient, job_id: int) -> str:
    await client.dead.retry(job_id)
    return f"dead job {job_id} is back in its queue and will run now"


ACTIONS: dict[str, tuple[Action, str, str]] = {
    # name: (call, page after success, page after failure)
    "retry": (_retry, "/jobs/{id}", "/jobs/{id}"),
    "delete": (_delete, "/jobs", "/jobs/{id}"),
    "cancel": (_cancel, "/jobs/{id}", "/jobs/{id}"),
    "retry-dead": (_retry_dead, "/jobs/{id}", "/dead/{id}"),
}


async def action(request: Request) -> Response:
    """A POST that changes a job; refused without the page's CSRF token."""
    form = await _form(request)
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        return _csrf_refused()
    job_id = int(request.path_params["job_id"])
    call, success, failure = ACTIONS[request.path_params["action"]]
    client = await _dash(request).client()
    try:
        notice = await call(client, job_id)
    except QueError as exc:
        target = _url(request, failure.format(id=job_id), problem=str(exc))
    else:
        target = _url(request, success.format(id=job_id), notice=notice)
    return RedirectResponse(target, status_code=303)


async def queue_action(request: Request) -> Response:
    """Pause or resume a queue (a POST with the page's CSRF token)."""
    form = await _form(request)
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        return _csrf_refused()
    queue = form.get("queue", "")
    label = DEFAULT_QUEUE_LABEL if queue == "" else queue
    client = await _dash(request).client()
    try:
        if request.path_params["action"] == "pause":
            changed = await client.pause_queue(queue)
            notice = f"queue {label} paused" if changed else f"queue {label} was already paused"
        else:
            changed = await client.resume_queue(queue)
            notice = f"queue {label} resumed" if changed else f"queue {label} was not paused"
    except (ValueError, QueError) as exc:
        return RedirectResponse(_url(request, "/", problem=str(exc)), status_code=303)
    return RedirectResponse(_url(request, "/", notice=notice), status_code=303)


def _csrf_refused() -> Response:
    return PlainTextResponse(
        "refused: the form's CSRF token is missing or wrong; reload the page and try again",
        status_code=403,
    )


async def metrics_page(request: Request) -> Response:
    """Prometheus exposition of every queue's depth and oldest due wait."""
    from .._metrics_extra import missing_metrics_extra

    problem = missing_metrics_extra("que web's /metrics")
    if problem is not None:
        return PlainTextResponse(problem, status_code=501)
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from .._metrics import QueueCollector

    stats = await (await _dash(request).client()).queue_stats()
    registry = CollectorRegistry()
    registry.register(QueueCollector(lambda: stats))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# -- the application ---------------------------------------------------------------


class _Guard(BaseHTTPMiddleware):
    """Authentication when configured, and the same-origin rule for POSTs."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        auth = _dash(request).auth
        if auth is not None and not auth.allows(request.headers.get("authorization")):
            return PlainTextResponse(
                "authentication required",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="que", charset="UTF-8"'},
            )
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and urllib.parse.urlsplit(origin).netloc != request.headers.get("host"):
                return PlainTextResponse("refused: cross-origin request", status_code=403)
        response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )
        return response


def create_app(
    client: AsyncClient | None = None,
    *,
    database_url: str | Connector | None = None,
    auth: Auth | None = None,
    refresh: float = 3.0,
    schedules: Iterable[Schedule] | None = None,
) -> Starlette:
    """The dashboard as an ASGI app, to serve (``que web``) or mount in a Starlette
    or FastAPI application: ``app.mount("/que", create_app(database_url=...))``.

    ``client``: an AsyncClient opened on the app's event loop (else one is opened
    on ``database_url`` at the first request, and closed with the app).
    ``auth``: credentials every request must carry (``que.web.Auth``); a mounted
    dashboard is otherwise as open as the routes around it. ``refresh``: seconds
    between live updates of a page. ``schedules``: the ``que.Schedule`` list the
    workers run; the schedules page then shows each with its next tick and the
    session leading them (else only the ticks que_schedules records).
    """
    dash = Dashboard(client, database_url, auth, refresh, schedules)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await dash.close()

    static = resources.files("que.web") / "static"
    routes = [
        Route("/", queues_page),
        Route("/jobs", jobs_page),
        Route("/jobs/{job_id:int}", job_page),
        Route("/dead", dead_page),
        Route("/dead/{job_id:int}", dead_job_page),
        Route("/schedules", schedules_page),
        Route("/metrics", metrics_page),
        Route("/queues/{action:str}", _checked_queue_action, methods=["POST"]),
        Route(
            "/{kind:str}/{job_id:int}/{action:str}",
            _checked_action,
            methods=["POST"],
        ),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Guard)], lifespan=lifespan)
    app.state.dashboard = dash
    return app


async def _checked_action(request: Request) -> Response:
    kind, name = request.path_params["kind"], request.path_params["action"]
    if kind == "dead" and name == "retry":
        request.path_params["action"] = "retry-dead"
    elif kind != "jobs" or name not in ACTIONS or name == "retry-dead":
        return PlainTextResponse(f"no action {kind}/{name}", status_code=404)
    return await action(request)


async def _checked_queue_action(request: Request) -> Response:
    if request.path_params["action"] not in ("pause", "resume"):
        return PlainTextResponse(f"no action queues/{request.path_params['action']}", 404)
    return await queue_action(request)

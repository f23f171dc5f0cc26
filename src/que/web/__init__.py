"""``que web``: a dashboard of the queues, jobs, dead jobs and schedules, with
retry, delete and cancel, as an ASGI app (the ``web`` extra).

Serve it with ``que web``, or mount it in a Starlette or FastAPI application::

    from que.web import create_app
    app.mount("/que", create_app(database_url=os.environ["DATABASE_URL"]))
"""

from __future__ import annotations

from ._app import create_app
from ._security import Auth, auth_from_env

__all__ = ["Auth", "auth_from_env", "create_app"]

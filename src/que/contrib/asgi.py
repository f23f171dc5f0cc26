"""An AsyncBatchWorker inside an ASGI app's lifespan (FastAPI, Starlette, ...).

``FastAPI(lifespan=worker_lifespan(make_client, work_map))``: on startup the
client opens and the worker starts; on shutdown the worker stops claiming,
running jobs finish (up to ``shutdown_timeout`` seconds; a job still running
then is left to be retried, its lock released with the client's
connections), and the client closes. The lifespan state holds ``que_client``
(for ``request.state.que_client.enqueue(..., conn=session)``) and
``que_worker``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from ..async_client import AsyncClient
from ..async_engine import AsyncBatchWorker

logger = logging.getLogger(__name__)


def worker_lifespan(
    client_factory: Callable[[], AsyncClient],
    work_map: Any,
    *,
    shutdown_timeout: float | None = 30.0,
    **worker_options: Any,
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan function running an AsyncBatchWorker for the app's lifetime.

    ``client_factory`` makes the (unopened) AsyncClient, e.g. ``lambda:
    async_client_from_engine(engine)``; ``worker_options`` are
    AsyncBatchWorker's (``concurrency``, ``queue``, ...). To add your own
    startup work, enter it from your lifespan: ``async with
    worker_lifespan(...)(app) as state: ... yield state``.
    """

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        async with client_factory() as client:
            worker = AsyncBatchWorker(client, work_map, **worker_options)
            worker.start()
            logger.info("que worker started", extra={"queues": worker.queues})
            try:
                yield {"que_client": client, "que_worker": worker}
            finally:
                logger.info("stopping the que worker", extra={"running": worker.running})
                if not await worker.shutdown(timeout=shutdown_timeout):
                    logger.warning(
                        "the que worker did not stop within %s s; its running jobs will be retried",
                        shutdown_timeout,
                    )

    return lifespan

"""A FastAPI app: an order and its job in the request's transaction, and
the jobs worked by an AsyncBatchWorker that lives as long as the app."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import que
from que.contrib.asgi import worker_lifespan
from que.contrib.sqlalchemy import async_client_from_engine


def create_app(database_url: str) -> FastAPI:
    engine = create_async_engine(database_url)  # postgresql+asyncpg://... or +psycopg

    async def ship(job: que.AsyncJob) -> None:
        async with engine.begin() as conn:
            update = text("UPDATE orders SET shipped = true WHERE id = :id")
            await conn.execute(update, {"id": job.args[0]})

    que_lifespan = worker_lifespan(
        lambda: async_client_from_engine(engine), {"ship": ship}, shutdown_timeout=30
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with que_lifespan(app) as state:  # the worker runs while the app serves
            yield state
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/orders")
    async def place_order(request: Request, fail: bool = False) -> dict[str, int]:
        async with AsyncSession(engine) as session, session.begin():
            insert = text("INSERT INTO orders DEFAULT VALUES RETURNING id")
            order_id = (await session.execute(insert)).scalar_one()
            job = que.Job(type="ship", args=[order_id])
            await request.state.que_client.enqueue(job, conn=session)
            if fail:  # the order and its job roll back together
                raise HTTPException(status_code=409, detail="not placed")
        return {"id": order_id}

    return app

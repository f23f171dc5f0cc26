"""SQLAlchemy (sync): a que Client from the engine, a job in the session's transaction."""

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import que
from que.contrib.sqlalchemy import client_from_engine


def place_order(engine: Engine, client: que.Client, fail: bool = False) -> int:
    with Session(engine) as session, session.begin():
        insert = text("INSERT INTO orders DEFAULT VALUES RETURNING id")
        order_id = session.execute(insert).scalar_one()
        client.enqueue(que.Job(type="ship", args=[order_id]), conn=session)
        if fail:  # the order and its job roll back together
            raise RuntimeError("not placed")
    return int(order_id)


def open_client(engine: Engine) -> que.Client:
    return client_from_engine(engine, max_connections=4)  # any driver: psycopg2, psycopg

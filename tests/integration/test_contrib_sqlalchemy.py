"""que.contrib.sqlalchemy: clients from engines of every PostgreSQL driver,
against PostgreSQL; URLs that are refused say why without the password."""

from __future__ import annotations

import pytest

import que

from ..optional import require, sqlalchemy_url


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg", "asyncpg"])
async def test_clients_from_an_engine_of_any_driver_reach_its_database(
    db_url: str, driver: str
) -> None:
    sqlalchemy = require("sqlalchemy")
    require(driver)
    from sqlalchemy.ext.asyncio import create_async_engine

    from que.contrib.sqlalchemy import async_client_from_engine, client_from_engine

    url = sqlalchemy_url(db_url, driver)
    if driver == "psycopg2":
        engine = sqlalchemy.create_engine(url)
        with client_from_engine(engine) as client:
            client.enqueue(que.Job(type="FromSync"))
        engine.dispose()
    else:
        async_engine = create_async_engine(url)
        async with async_client_from_engine(async_engine) as aclient:
            await aclient.enqueue(que.Job(type="FromAsync"))
        await async_engine.dispose()
    with client_from_engine(url.render_as_string(hide_password=False)) as client:
        assert [stat.count for stat in client.stats()] == [1]


def test_urls_that_cannot_become_a_conninfo_are_refused_without_the_password() -> None:
    require("sqlalchemy")
    from que.contrib.sqlalchemy import conninfo

    good = conninfo("postgresql+asyncpg://ann:s3cret@db:5433/shop?ssl=require")
    assert "sslmode=require" in good
    assert "port=5433" in good
    with pytest.raises(ValueError, match="prepared_statement_cache_size") as refused:
        conninfo("postgresql+asyncpg://ann:s3cret@db/shop?prepared_statement_cache_size=0")
    assert "s3cret" not in str(refused.value)
    with pytest.raises(ValueError, match="PostgreSQL") as other:
        conninfo("mysql+pymysql://ann:s3cret@db/shop")
    assert "s3cret" not in str(other.value)
    with pytest.raises(TypeError, match="int"):
        conninfo(5)

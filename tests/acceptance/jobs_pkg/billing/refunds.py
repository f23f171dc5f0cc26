from __future__ import annotations

from pathlib import Path

import que


@que.job(name="Billing::Refund", queue="")
async def refund(folder: str, order_id: int) -> None:
    """An async job in a sub-package: the worker runs the asyncio engine for it."""
    (Path(folder) / f"refund-{order_id}").touch()

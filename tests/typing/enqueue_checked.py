"""Checked by mypy (tests/unit/test_typing.py), never run: each line whose
comment is E, a colon and a text must give a mypy error holding that text;
no other line may give one."""

from __future__ import annotations

from typing_extensions import assert_type

import que


@que.job(name="Mailer::Welcome")
def send_welcome(user_id: int, tone: str = "warm") -> None: ...


@que.job
async def refund(order_id: int) -> None: ...


def enqueue_them() -> None:
    assert_type(send_welcome.enqueue(42), que.Job)
    send_welcome.enqueue(42, tone="dry")
    send_welcome.options(delay=60, queue="mail").enqueue(42)
    send_welcome.enqueue("42")  # E: incompatible type "str"; expected "int"
    send_welcome.enqueue()  # E: Missing positional argument "user_id"
    send_welcome.options(delay=60).enqueue(42, 43)  # E: incompatible type "int"; expected "str"
    send_welcome.enqueue(42, colour="red")  # E: Unexpected keyword argument "colour"
    send_welcome(42)
    send_welcome(None)  # E: incompatible type "None"; expected "int"


async def enqueue_async() -> None:
    assert_type(await refund.enqueue_async(7), que.AsyncJob)
    await refund.enqueue_async("7")  # E: incompatible type "str"; expected "int"


def lazy_names_stay_checked() -> None:
    assert_type(que.Client, type[que.Client])
    print(que.Clinet)  # E: Module has no attribute "Clinet"

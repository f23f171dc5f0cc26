"""What a view would do: an order and its job, committed together or not at all."""

from django.db import connection, transaction

from que.contrib.django import get_client

from .jobs import ship
from .models import Order


def place(n: int, fail: bool = False) -> None:
    with transaction.atomic():
        order = Order.objects.create(n=n)
        ship.options(conn=connection, client=get_client()).enqueue(order.id)
        if fail:
            raise RuntimeError("the order is not placed")

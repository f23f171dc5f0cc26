"""The shop's jobs: ship an order, its update and the job's delete in one transaction."""

from django.db import connection, transaction

import que

from .models import Order


@que.job
def ship(order_id: int) -> None:
    with transaction.atomic():
        Order.objects.filter(id=order_id).update(shipped=True)
        que.current_job().delete(conn=connection)

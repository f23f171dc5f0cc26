"""The shop's tasks, for Django's Tasks framework on que's backend."""

try:
    from django.tasks import TaskContext, task
except ImportError:  # Django before 6: the django-tasks backport
    from django_tasks import TaskContext, task  # type: ignore[no-redef]

from django.db import transaction

from .models import Order


@task
def receipt(order_id: int, *, note: str = "") -> dict[str, object]:
    """Marks the order shipped and returns a receipt (a result read back later)."""
    Order.objects.filter(id=order_id).update(shipped=True)
    return {"order": order_id, "note": note}


@task(priority=50, queue_name="mail")
async def welcome(name: str) -> str:
    return f"welcome {name}"


@task(takes_context=True)
def flaky(context: TaskContext, order_id: int) -> int:
    """Fails on its first attempt, then works: its result shows both attempts."""
    if context.attempt == 1:
        raise RuntimeError(f"first attempt at order {order_id}")
    return context.attempt


def place_with_receipt(n: int, fail: bool = False) -> str:
    """An order and its task, committed together or not at all; the result id."""
    with transaction.atomic():
        order = Order.objects.create(n=n)
        result = receipt.enqueue(order.id, note=f"order {n}")
        if fail:
            raise RuntimeError("the order is not placed")
    return str(result.id)


@task
def doomed(order_id: int) -> None:
    raise ValueError(f"order {order_id} cannot be shipped")

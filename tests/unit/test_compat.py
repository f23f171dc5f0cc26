import queue
import threading

import pytest

from que._compat import PriorityQueue


def test_sync_priority_queue_gives_the_smallest_entry_to_any_thread() -> None:
    entries: PriorityQueue[tuple[int, int]] = PriorityQueue()
    with pytest.raises(queue.Empty):
        entries.get_nowait()
    for entry in [(100, 0), (100, 1), (1, 2), (100, 3)]:
        entries.put_nowait(entry)
    assert entries.qsize() == 4
    assert entries.get_nowait() == (1, 2)
    taken: list[tuple[int, int]] = []
    takers = [threading.Thread(target=lambda: taken.append(entries.get())) for _ in range(4)]
    for taker in takers:
        taker.start()
    entries.put_nowait((7, 4))  # a fourth taker waits for it
    for taker in takers:
        taker.join(10)
    assert sorted(taken) == [(7, 4), (100, 0), (100, 1), (100, 3)]
    assert entries.qsize() == 0

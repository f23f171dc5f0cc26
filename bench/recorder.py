"""What a worker process remembers about the jobs it ran.

The exactly-once check needs every job's sequence number; the latency
scenario needs when each job started. Both are appended to typed arrays
(one C-level append each, atomic under the GIL, so worker threads and
asyncio tasks can share one recorder without a lock). At the end the
harness sums the arrays of all worker processes: a job seen zero times or
twice makes the run invalid. Per job this costs well under a microsecond,
against the tens of microseconds any queue spends on a job.
"""

from __future__ import annotations

import time
from array import array


class Recorder:
    def __init__(self) -> None:
        self.seqs: array[int] = array("q")
        self.latency_seqs: array[int] = array("q")
        self.latencies: array[float] = array("d")

    def hit(self, seq: int, sent_at: float) -> None:
        """The work function: note that job ``seq`` started now."""
        if sent_at:
            started = time.time()
            self.latency_seqs.append(seq)
            self.latencies.append(started - sent_at)
        self.seqs.append(seq)

    def count(self) -> int:
        return len(self.seqs)

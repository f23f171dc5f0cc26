"""The throughput chart: samples of rows deleted from que_jobs, drawn as inline SVG."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=15)
MIN_SPACING = timedelta(seconds=2)
WIDTH = 480
HEIGHT = 80


@dataclass(frozen=True)
class Sample:
    at: datetime
    deleted: int


class Throughput:
    """Samples taken when a page is served, kept for WINDOW; the chart shows
    jobs finished per minute between consecutive samples."""

    def __init__(self) -> None:
        self._samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> None:
        last = self._samples[-1] if self._samples else None
        if last is not None and sample.at - last.at < MIN_SPACING:
            return
        if last is not None and sample.deleted < last.deleted:
            self._samples.clear()  # statistics were reset
        self._samples.append(sample)
        while self._samples and sample.at - self._samples[0].at > WINDOW:
            self._samples.popleft()

    def rates(self) -> list[tuple[datetime, float]]:
        """(time, jobs per minute) for each interval between samples."""
        samples = list(self._samples)
        return [
            (b.at, (b.deleted - a.deleted) * 60.0 / max((b.at - a.at).total_seconds(), 1e-3))
            for a, b in itertools.pairwise(samples)
        ]


def chart_svg(rates: list[tuple[datetime, float]], now: datetime) -> str:
    """An SVG line of ``rates`` over the last WINDOW up to ``now``. Only numbers go
    into it, so it needs no escaping."""
    peak = max((rate for _, rate in rates), default=0.0)
    scale = peak if peak > 0 else 1.0
    start = now - WINDOW
    points = []
    for at, rate in rates:
        x = (at - start).total_seconds() / WINDOW.total_seconds() * WIDTH
        y = HEIGHT - 4 - rate / scale * (HEIGHT - 8)
        # Samples carry the database's clock and ``now`` is this process's: a
        # skew between them must not draw outside the chart.
        points.append(f"{min(max(x, 0), WIDTH):.1f},{y:.1f}")
    line = (
        f'<polyline fill="none" stroke="currentColor" stroke-width="2" '
        f'points="{" ".join(points)}"/>'
        if len(points) > 1
        else ""
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="jobs finished per minute, last 15 minutes, peak {peak:.0f}">'
        f'<line x1="0" y1="{HEIGHT - 4}" x2="{WIDTH}" y2="{HEIGHT - 4}" stroke="#ccc"/>'
        f"{line}</svg>"
    )

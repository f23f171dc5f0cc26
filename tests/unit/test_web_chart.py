"""The throughput chart's samples and drawing, with the inputs a live page can
produce: nothing yet, one sample, idle queues, a statistics reset, clocks that
disagree."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("starlette")  # que.web needs the web extra

from que.web._chart import HEIGHT, MIN_SPACING, WIDTH, WINDOW, Sample, Throughput, chart_svg

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def points(svg: str) -> list[tuple[float, float]]:
    """The polyline's points; [] when the chart draws no line. Fails on bad XML."""
    root = ET.fromstring(svg)
    lines = [e for e in root.iter() if e.tag.endswith("polyline")]
    if not lines:
        return []
    assert len(lines) == 1
    return [
        (float(x), float(y))
        for x, y in (pair.split(",") for pair in lines[0].attrib["points"].split())
    ]


def sampled(*pairs: tuple[float, int]) -> Throughput:
    """A Throughput fed samples ``(seconds before NOW, rows deleted so far)``."""
    throughput = Throughput()
    for seconds_before, deleted in pairs:
        throughput.add(Sample(NOW - timedelta(seconds=seconds_before), deleted))
    return throughput


def test_no_samples_draw_an_empty_chart() -> None:
    svg = chart_svg([], NOW)
    assert points(svg) == []
    assert "peak 0" in svg
    assert Throughput().rates() == []


def test_one_sample_has_no_rate_yet() -> None:
    throughput = sampled((10, 500))
    assert throughput.rates() == []
    assert points(chart_svg(throughput.rates(), NOW)) == []


def test_idle_queues_draw_a_flat_line_on_the_baseline() -> None:
    throughput = sampled((120, 7), (60, 7), (0, 7))
    rates = throughput.rates()
    assert [rate for _, rate in rates] == [0.0, 0.0]
    drawn = points(chart_svg(rates, NOW))
    assert [y for _, y in drawn] == [HEIGHT - 4, HEIGHT - 4]
    assert drawn[-1][0] == WIDTH


def test_the_peak_reaches_the_top_and_rates_are_per_minute() -> None:
    rates = sampled((120, 0), (60, 30), (0, 150)).rates()
    assert [rate for _, rate in rates] == [30.0, 120.0]
    svg = chart_svg(rates, NOW)
    assert [y for _, y in points(svg)] == [HEIGHT - 4 - (HEIGHT - 8) / 4, 4.0]
    assert "peak 120" in svg


def test_samples_too_close_together_are_skipped() -> None:
    close = MIN_SPACING.total_seconds() / 2
    throughput = sampled((60, 0), (60 - close, 1_000_000), (0, 60))
    assert [rate for _, rate in throughput.rates()] == [60.0]


def test_a_statistics_reset_starts_over_instead_of_a_negative_rate() -> None:
    throughput = sampled((120, 1000), (60, 1060), (30, 5))
    assert throughput.rates() == []
    throughput.add(Sample(NOW, 35))
    assert [rate for _, rate in throughput.rates()] == [60.0]


def test_a_clock_going_back_is_ignored() -> None:
    throughput = sampled((60, 0), (0, 60))
    throughput.add(Sample(NOW - timedelta(seconds=600), 120))
    assert [rate for _, rate in throughput.rates()] == [60.0]


def test_samples_older_than_the_window_are_dropped() -> None:
    old = WINDOW.total_seconds() + 60
    throughput = sampled((old, 0), (old - 60, 60), (60, 60), (0, 120))
    assert len(throughput.rates()) == 2


@pytest.mark.parametrize("skew", [timedelta(minutes=-30), timedelta(minutes=5)])
def test_clock_skew_between_database_and_dashboard_stays_inside_the_chart(
    skew: timedelta,
) -> None:
    rates = [(NOW + skew - timedelta(seconds=60), 10.0), (NOW + skew, 20.0)]
    for x, y in points(chart_svg(rates, NOW)):
        assert 0 <= x <= WIDTH and 0 <= y <= HEIGHT


def test_a_huge_rate_keeps_every_point_inside_the_chart() -> None:
    rates = [(NOW - timedelta(seconds=60), 0.0), (NOW, 1e12)]
    for x, y in points(chart_svg(rates, NOW)):
        assert 0 <= x <= WIDTH and 0 <= y <= HEIGHT

"""The dashboard's SVG charts: well-formed, labelled axes, marked errors, escaped text, accessible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from evaluation.monitoring.charts import ChartPoint, nice_ticks, quality_chart

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def days(values: list[float | None], volumes: list[int], errors: list[int]) -> list[ChartPoint]:
    return [
        ChartPoint(START + timedelta(days=i), v, n, e)
        for i, (v, n, e) in enumerate(zip(values, volumes, errors, strict=True))
    ]


def texts(root: ElementTree.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_a_pass_rate_chart_has_a_0_to_100_axis_day_labels_volume_bars_and_error_marks() -> None:
    points = days([0.9, None, 0.5, 1.0, 0.75, 0.8, 0.6], [10, 0, 4, 2, 8, 5, 20], [0, 0, 1, 0, 0, 0, 3])
    root = ElementTree.fromstring(str(quality_chart(points, title="fast: pass rate", unit="day", chart_id="c1")))
    labels = texts(root)
    assert [t for t in labels if t.endswith("%")] == ["0%", "25%", "50%", "75%", "100%"]
    assert {"Nov 23", "Nov 24", "Nov 29"} <= set(labels)
    assert "20" in labels  # the volume scale's maximum
    assert root.get("role") == "img" and root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").text == "fast: pass rate"
    assert root.find(f"{SVG}desc").text == "Pass rate per day: 49 results, 4 errors; pass rate from 50% to 100%."
    marks = [p for p in root.iter(f"{SVG}path") if p.get("class") == "error-mark"]
    assert [m.find(f"{SVG}title").text for m in marks] == ["Wed Nov 25: 1 error", "Sun Nov 29: 3 errors"]
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 6  # the empty day has no bar
    # the day without a value breaks the line in two
    assert len(list(root.iter(f"{SVG}polyline"))) == 2 and len(list(root.iter(f"{SVG}circle"))) == 6


def test_a_numeric_chart_uses_round_ticks_over_the_values() -> None:
    points = days([12.0, 47.5, 30.0], [3, 3, 3], [0, 0, 0])
    root = ElementTree.fromstring(str(quality_chart(points, title="length", unit="day", rate=False)))
    y_axis = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert y_axis == ["0", "10", "20", "30", "40", "50"]
    assert "Mean value per day" in root.find(f"{SVG}desc").text
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0] == nice_ticks(0, 0)
    assert nice_ticks(0, 470) == [0, 100, 200, 300, 400, 500]


def test_hourly_charts_label_every_fourth_hour() -> None:
    points = [ChartPoint(START + timedelta(hours=h), 1.0, 1, 0) for h in range(24)]
    labels = texts(ElementTree.fromstring(str(quality_chart(points, title="t", unit="hour"))))
    assert [t for t in labels if t.endswith(":00")] == ["00:00", "04:00", "08:00", "12:00", "16:00", "20:00"]


def test_every_text_is_escaped() -> None:
    nasty = '<script>alert("x")</script> & co'
    markup = str(quality_chart(days([0.5], [1], [0]), title=nasty, unit="day", chart_id='"><x'))
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    root = ElementTree.fromstring(markup)
    assert root.find(f"{SVG}title").text == nasty
    assert nasty in root.get("aria-label")


def test_an_empty_window_still_draws_its_axes_and_says_so() -> None:
    root = ElementTree.fromstring(str(quality_chart(days([None] * 3, [0] * 3, [0] * 3), title="t", unit="day")))
    labels = texts(root)
    assert "No results in this window" in labels and "100%" in labels and "Nov 25" in labels
    assert not list(root.iter(f"{SVG}polyline"))

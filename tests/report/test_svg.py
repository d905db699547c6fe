"""The inline SVG charts: tick choice, broken lines, escaping, empty data."""

from __future__ import annotations

from iterkd.report import svg


def test_nice_ticks() -> None:
    assert svg.nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.nice_ticks(8.1, 8.22) == [8.1, 8.15, 8.2, 8.25]
    flat = svg.nice_ticks(0.0, 0.0)
    assert flat[0] < 0.0 < flat[-1]


def test_line_chart_breaks_at_missing_values_and_escapes() -> None:
    chart = svg.line_chart(
        {"<a&b>": [(0, 0.1), (1, 0.2), (2, None), (3, 0.4), (4, 0.5)]},
        title="t<1>",
        x_labels=["baseline", "000", "001", "002", "003"],
    )
    assert chart.startswith("<svg") and chart.endswith("</svg>")
    assert chart.count("<polyline") == 2 and chart.count("<circle") == 4
    assert "&lt;a&amp;b&gt;" in chart and "t&lt;1&gt;" in chart and "<a&b>" not in chart


def test_bars_histogram_and_empty() -> None:
    bars = svg.bar_chart([("requested", 4.0), ("accepted", 1.0)], title="funnel")
    assert bars.count("<rect") == 2 and ">4<" in bars
    histogram = svg.histogram([3, 0, 1, 0, 0, 0, 0, 0, 0, 2], title="tests view")
    assert histogram.count("<rect") == 10
    assert "no data" in svg.line_chart({"a": [(0, None)]}, title="x")
    assert "no data" in svg.bar_chart([], title="x")

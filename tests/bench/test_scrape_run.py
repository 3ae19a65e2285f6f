"""bench.scrape_run's chart, from a made-up report (the run itself, a cluster with Prometheus,
is `python -m bench.scrape_run`; tests/localenv/test_prometheus_scrape.py is its test)."""

import xml.etree.ElementTree as ElementTree

from bench.scrape_run import PANELS, segments, svg_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_a_series_breaks_where_it_has_a_gap_or_no_value():
    points = [(0, 1.0), (1, 2.0), (2, None), (3, 4.0), (4, 5.0), (9, 0.0), (10, 1.0)]
    assert segments(points) == [[(0, 1.0), (1, 2.0)], [(3, 4.0), (4, 5.0)], [(9, 0.0), (10, 1.0)]]
    assert segments([]) == []


def test_the_chart_is_an_svg_with_a_line_per_stretch_and_the_kill_marked():
    start = 1_000.0
    rising = [(start + s, float(100 * s)) for s in range(20)]
    after_kill = [(start + s, float(100 * (s - 24))) for s in range(24, 40)]
    series = {name: [] for _, names in PANELS for name in names}
    series["rows committed: sum(tpcRowsCommitted)"] = rising + after_kill
    series["commit latency p50 (ms)"] = [(start, None), (start + 1, 80.0), (start + 2, 90.0)]
    series["restarts: numRestarts"] = [(start + s, 0.0 if s < 22 else 2.0) for s in range(40)]
    report = {"start": start, "end": start + 40, "killed_at": start + 20, "series": series}

    root = ElementTree.fromstring(svg_chart(report))

    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f"{SVG}polyline")) == 2 + 1 + 1
    assert len(root.findall(f"{SVG}line")) == len(PANELS)  # the kill, in every panel
    labels = {text.text for text in root.findall(f"{SVG}text")}
    assert {name for _, names in PANELS for name in names} <= labels
    assert "nan" not in svg_chart(report)

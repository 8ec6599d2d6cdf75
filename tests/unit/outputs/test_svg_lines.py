"""report.html's line charts (issue 15 item 9): equal series stay visible on top of each other, and the last x
label stays inside the chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from simulator.outputs.svg import line_chart, percentile_chart

NS = "{http://www.w3.org/2000/svg}"


def _svg(text: str) -> ET.Element:
    return ET.fromstring(text)


def test_identical_series_are_drawn_distinguishably() -> None:
    same = [(float(t), 10.0) for t in range(31)]
    root = _svg(line_chart("Throughput", [("offered", same), ("acked", same), ("delivered", same)],
                           x_label="s", y_label="events / s"))
    lines = root.findall(f"{NS}polyline")
    assert len(lines) == 3
    styles = {(float(p.get("stroke-width", "0")), p.get("stroke-dasharray")) for p in lines}
    assert len(styles) == 3  # no two drawn alike
    widths = [float(p.get("stroke-width", "0")) for p in lines]
    assert widths == sorted(widths, reverse=True)  # drawn first = widest: the later, thinner ones sit on it
    assert lines[0].get("stroke-dasharray") is None and lines[1].get("stroke-dasharray")


def _x_labels(root: ET.Element) -> list[ET.Element]:
    """Tick labels on the x axis: the "k" texts on the lowest baseline (the y labels are right-aligned left)."""
    ticks = [t for t in root.findall(f"{NS}text") if t.get("class") == "k"]
    baseline = max(float(t.get("y", "0")) for t in ticks)
    return [t for t in ticks if float(t.get("y", "0")) == baseline]


def test_the_last_x_label_fits_in_the_chart() -> None:
    points = [(float(t), 5.0) for t in range(0, 1201, 10)]
    root = _svg(line_chart("Throughput", [("offered", points)], x_label="s", y_label="events / s"))
    width = float(root.get("width", "0"))
    last = max(_x_labels(root), key=lambda t: float(t.get("x", "0")))
    assert last.text == "1,200"
    x, anchor = float(last.get("x", "0")), last.get("text-anchor")
    right = x if anchor == "end" else x + 7.0 * len(last.text or "") / 2
    assert right <= width and anchor == "end"
    first = min(_x_labels(root), key=lambda t: float(t.get("x", "0")))
    assert first.get("text-anchor") == "middle"


def test_the_percentile_axis_end_fits_too() -> None:
    root = _svg(percentile_chart("Latency", [("ack", [(50.0, 1.0), (99.999, 3.0)])]))
    last = [t for t in root.findall(f"{NS}text") if t.text == "99.999%"]
    assert len(last) == 1 and last[0].get("text-anchor") == "end"

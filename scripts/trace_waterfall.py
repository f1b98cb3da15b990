"""
================================================================
FILE: trace_waterfall.py
PATH: /scripts/trace_waterfall.py
DESCRIPTION: Renders traces dumped by tests/e2e/test_observability.py as an SVG waterfall
             (the picture in docs/observability.md)
VERSION: v1.0.0
UPDATED: 2026-12-02 07:00:00
================================================================

    LKERN_TRACE_DUMP=/tmp/traces .venv/bin/pytest tests/e2e/test_observability.py -k trace
    .venv/bin/python scripts/trace_waterfall.py /tmp/traces/contact-change.json \\
        /tmp/traces/order-creation.json > docs/observability-traces.svg

One row per span, indented under its parent, a bar from its start to its end on one time axis
per trace, coloured by service; what a trace viewer (Jaeger, Grafana Tempo) shows.
"""

# === IMPORTS ===
import json
import sys
from html import escape
from pathlib import Path
from typing import Any

# === CONSTANTS ===
ROW_H = 22
LABEL_W = 520
BAR_W = 560
TITLE_H = 34
COLOURS = {"lkms101-contacts": "#2f7ed8", "lkms102-orders": "#e4862d"}
OTHER_COLOUR = "#888888"


# === LAYOUT ===
def ordered(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Spans depth-first (children by start time) with their depth; orphans at depth 0."""
    ids = {span["span_id"] for span in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for span in spans:
        parent = span["parent_span_id"]
        if parent and parent in ids:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    rows: list[tuple[int, dict[str, Any]]] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        rows.append((depth, span))
        for child in sorted(children.get(span["span_id"], []), key=lambda s: s["start_ns"]):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: s["start_ns"]):
        walk(root, 0)
    return rows


def render_trace(title: str, spans: list[dict[str, Any]], top: int) -> tuple[list[str], int]:
    """SVG elements of one trace starting at ``top``; returns them and the height used."""
    rows = ordered(spans)
    start = min(span["start_ns"] for span in spans)
    end = max(span["end_ns"] for span in spans)
    scale = BAR_W / max(end - start, 1)
    total_ms = (end - start) / 1e6
    parts = [
        f'<text x="8" y="{top + 22}" font-size="15" font-weight="bold">{escape(title)} '
        f"({total_ms:.1f} ms, {len(spans)} spans)</text>"
    ]
    for index, (depth, span) in enumerate(rows):
        y = top + TITLE_H + index * ROW_H
        colour = COLOURS.get(span["service"], OTHER_COLOUR)
        label = f"{span['service'].split('-')[-1]}: {span['name']} [{span['kind']}]"
        x = LABEL_W + (span["start_ns"] - start) * scale
        width = max((span["end_ns"] - span["start_ns"]) * scale, 2)
        duration = (span["end_ns"] - span["start_ns"]) / 1e6
        if index % 2 == 0:
            parts.append(
                f'<rect x="0" y="{y}" width="{LABEL_W + BAR_W + 80}" height="{ROW_H}" '
                'fill="#f4f4f4"/>'
            )
        parts.append(
            f'<text x="{8 + depth * 14}" y="{y + 15}" font-size="12">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW_H - 8}" '
            f'fill="{colour}" rx="2"/>'
        )
        parts.append(
            f'<text x="{x + width + 4:.1f}" y="{y + 15}" font-size="10" fill="#555">'
            f"{duration:.2f} ms</text>"
        )
    return parts, TITLE_H + len(rows) * ROW_H + 16


def render(files: list[Path]) -> str:
    """One SVG with every trace of ``files`` under each other, and a legend."""
    parts: list[str] = []
    top = 0
    for file in files:
        spans = json.loads(file.read_text(encoding="utf-8"))
        elements, height = render_trace(file.stem.replace("-", " "), spans, top)
        parts += elements
        top += height
    legend_y = top + 8
    for index, (service, colour) in enumerate(COLOURS.items()):
        x = 8 + index * 220
        parts.append(f'<rect x="{x}" y="{legend_y}" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x + 20}" y="{legend_y + 12}" font-size="12">{service}</text>')
    width, height = LABEL_W + BAR_W + 80, legend_y + 24
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
        + "".join(parts)
        + "</svg>\n"
    )


# === MAIN ===
if __name__ == "__main__":
    sys.stdout.write(render([Path(name) for name in sys.argv[1:]]))

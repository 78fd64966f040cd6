"""Throughput against concurrency as a small, dependency-free SVG line chart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50
SERIES = (
    ("ceiling_rps", "ceiling: parse + VADER + 200", "#888888"),
    ("service_rps", "service: SQLite, 1 event/post", "#1f77b4"),
)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def throughput_svg(points: Sequence[dict[str, Any]], title: str) -> str:
    """An SVG chart of requests/s by number of connections (log-spaced x axis by position)."""
    if not points:
        raise ValueError("no points to draw")
    top = max(max(point[key] for point in points) for key, _, _ in SERIES) * 1.1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + (plot_w * index / max(1, len(points) - 1))

    def y(value: float) -> float:
        return float(TOP + plot_h * (1 - value / top))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{_escape(title)}</text>',
    ]
    for step in range(6):
        value = top * step / 5
        parts.append(
            f'<line x1="{LEFT}" y1="{y(value):.1f}" x2="{WIDTH - RIGHT}" y2="{y(value):.1f}" '
            'stroke="#e5e5e5"/>'
        )
        parts.append(
            f'<text x="{LEFT - 8}" y="{y(value) + 4:.1f}" text-anchor="end">{value:,.0f}</text>'
        )
    for index, point in enumerate(points):
        parts.append(
            f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">'
            f"{point['connections']}</text>"
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
        "concurrent connections</text>"
    )
    parts.append(
        f'<text x="16" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {TOP + plot_h / 2})">requests/s</text>'
    )
    for row, (key, label, colour) in enumerate(SERIES):
        line = " ".join(f"{x(i):.1f},{y(point[key]):.1f}" for i, point in enumerate(points))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for index, point in enumerate(points):
            parts.append(
                f'<circle cx="{x(index):.1f}" cy="{y(point[key]):.1f}" r="3" fill="{colour}"/>'
            )
        legend_y = TOP + 8 + row * 16
        parts.append(
            f'<line x1="{LEFT + 10}" y1="{legend_y}" x2="{LEFT + 30}" y2="{legend_y}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{LEFT + 36}" y="{legend_y + 4}">{_escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_chart(points: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Write the chart to `path`."""
    path.write_text(throughput_svg(points, title), encoding="utf-8")

"""Server-side SVG charts; colours come from classes the stylesheet sets for light and dark mode."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from storage.dashboard import WEEKDAYS, Count, Point


def _svg(width: int, height: int, label: str, body: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )


def frequency_chart(points: Sequence[Point], bucket: str) -> str:
    """Columns: escalations opened per hour or day."""
    width, height, left, bottom = 720, 220, 36, 28
    plot_w, plot_h = width - left - 8, height - bottom - 10
    top = max((p.count for p in points), default=0) or 1
    slot = plot_w / max(1, len(points))
    parts = [
        f'<line class="axis" x1="{left}" y1="{10 + plot_h}" x2="{width - 8}" y2="{10 + plot_h}"/>',
        f'<text class="tick" x="{left - 4}" y="16" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{left - 4}" y="{10 + plot_h}" text-anchor="end">0</text>',
    ]
    label_every = max(1, len(points) // 8)
    for index, point in enumerate(points):
        bar_h = plot_h * point.count / top
        x = left + index * slot
        stamp = point.start.strftime("%d %b %H:00" if bucket == "hour" else "%d %b")
        parts.append(
            f'<rect class="bar" x="{x + slot * 0.1:.1f}" y="{10 + plot_h - bar_h:.1f}" '
            f'width="{slot * 0.8:.1f}" height="{bar_h:.1f}">'
            f"<title>{escape(stamp)}: {point.count}</title></rect>"
        )
        if index % label_every == 0:
            short = point.start.strftime("%H:00" if bucket == "hour" else "%d %b")
            parts.append(
                f'<text class="tick" x="{x + slot / 2:.1f}" y="{height - 8}" '
                f'text-anchor="middle">{escape(short)}</text>'
            )
    return _svg(width, height, f"Escalations per {bucket}", "".join(parts))


def bar_list(counts: Sequence[Count], label: str) -> str:
    """Horizontal bars, one per key, longest first."""
    if not counts:
        return '<p class="empty">None in this range.</p>'
    row_h, width, name_w = 22, 360, 130
    top = max(c.count for c in counts) or 1
    parts = []
    for index, item in enumerate(counts):
        y = index * row_h
        bar_w = (width - name_w - 40) * item.count / top
        parts.append(
            f'<text class="label" x="0" y="{y + 15}">{escape(item.key)}</text>'
            f'<rect class="bar" x="{name_w}" y="{y + 4}" width="{bar_w:.1f}" height="14"/>'
            f'<text class="value" x="{name_w + bar_w + 4:.1f}" y="{y + 15}">{item.count}</text>'
        )
    return _svg(width, row_h * len(counts), label, "".join(parts))


def heatmap(grid: Sequence[Sequence[int]]) -> str:
    """Weekday by hour (UTC): darker cells, more escalations."""
    cell, left, top_pad = 26, 40, 18
    peak = max((n for row in grid for n in row), default=0) or 1
    parts = [
        f'<text class="tick" x="{left + hour * cell + cell / 2}" y="12" '
        f'text-anchor="middle">{hour:02d}</text>'
        for hour in range(0, 24, 3)
    ]
    for day, row in enumerate(grid):
        y = top_pad + day * cell
        parts.append(f'<text class="label" x="0" y="{y + 17}">{WEEKDAYS[day]}</text>')
        for hour, count in enumerate(row):
            # Five shades keep the scale readable in both colour schemes.
            shade = 0 if count == 0 else 1 + min(3, int(4 * count / (peak + 1)))
            parts.append(
                f'<rect class="heat heat-{shade}" x="{left + hour * cell}" y="{y}" '
                f'width="{cell - 2}" height="{cell - 2}" data-count="{count}">'
                f"<title>{WEEKDAYS[day]} {hour:02d}:00 — {count}</title></rect>"
            )
    return _svg(left + 24 * cell, top_pad + 7 * cell, "Peak hours (UTC)", "".join(parts))


def score_line(
    scores: Sequence[float], thresholds: Sequence[tuple[str, float]], marks: Sequence[int]
) -> str:
    """The score after each turn, with the level thresholds as dashed lines."""
    if not scores:
        return ""
    width, height, left = 720, 180, 36
    plot_w, plot_h = width - left - 10, height - 30
    top = max([*scores, *(value for _, value in thresholds), 1.0]) * 1.1
    step = plot_w / max(1, len(scores) - 1)

    def at(index: int, score: float) -> tuple[float, float]:
        return left + index * step, 10 + plot_h - plot_h * score / top

    parts = [f'<line class="axis" x1="{left}" y1="{10 + plot_h}" x2="{width}" y2="{10 + plot_h}"/>']
    for name, value in thresholds:
        _, y = at(0, value)
        parts.append(
            f'<line class="threshold" x1="{left}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>'
            f'<text class="tick" x="{width - 4}" y="{y - 3:.1f}" text-anchor="end">'
            f"{escape(name)}</text>"
        )
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}"
        for i, (x, y) in enumerate(at(i, s) for i, s in enumerate(scores))
    )
    parts.append(f'<path class="line" d="{path}"/>')
    for index, score in enumerate(scores):
        x, y = at(index, score)
        kind = "dot marked" if index in marks else "dot"
        parts.append(
            f'<circle class="{kind}" cx="{x:.1f}" cy="{y:.1f}" r="4">'
            f"<title>turn {index + 1}: score {score:.0f}</title></circle>"
        )
    return _svg(width, height, "Score after each turn", "".join(parts))

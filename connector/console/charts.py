"""Small charts drawn as inline SVG (no script, no style attributes: the console's CSP allows neither):
bars over time, and one bar split by outcome."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup

WIDTH, HEIGHT = 320, 80
OUTCOME_COLOURS = {"succeeded": "#2e7d32", "pending": "#f9a825", "failed": "#c62828"}


def _svg(label: str, body: Markup, height: int = HEIGHT) -> Markup:
    """The chart's frame around `body`; `Markup.format` escapes every value put in."""
    return Markup(
        '<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{label}">'
        '<title>{label}</title><rect x="0" y="0" width="{w}" height="{h}" fill="#fafafa" stroke="#ddd"/>{body}</svg>'
    ).format(w=WIDTH, h=height, label=label, body=body)


def _text(x: float, y: float, value: str, size: int = 11, fill: str = "#333") -> Markup:
    return Markup('<text x="{}" y="{}" font-size="{}" fill="{}">{}</text>').format(x, y, size, fill, value)


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str) -> Markup:
    return Markup(
        '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{}</title></rect>'
    ).format(x, y, w, h, fill, title)


def bars(values: Sequence[float], label: str, unit: str = "", colour: str = "#1565c0") -> Markup:
    """One bar per value, scaled to the largest; the largest value is written in the corner."""
    top = max(values, default=0)
    if not values or top <= 0:
        return _svg(label, _text(8, HEIGHT // 2, "no data yet", 12, "#777"))
    step = WIDTH / len(values)
    usable = HEIGHT - 18
    parts = []
    for index, value in enumerate(values):
        h = usable * value / top
        parts.append(
            _rect(index * step + step * 0.1, HEIGHT - h, max(step * 0.8, 1), h, colour, f"{value:g}{unit}")
        )
    parts.append(_text(4, 12, f"max {top:g}{unit}"))
    return _svg(label, Markup("").join(parts))


def outcomes(counts: Mapping[str, int], label: str) -> Markup:
    """One horizontal bar split by outcome, with a legend of the counts."""
    total = sum(counts.values())
    height = 46
    if total == 0:
        return _svg(label, _text(8, 26, "no deliveries yet", 12, "#777"), height)
    parts, x = [], 0.0
    for status, n in counts.items():
        w = WIDTH * n / total
        if w > 0:
            parts.append(_rect(x, 4, w, 18, OUTCOME_COLOURS.get(status, "#607d8b"), f"{status}: {n}"))
        x += w
    parts.append(_text(4, 38, "  ".join(f"{status} {n}" for status, n in counts.items())))
    return _svg(label, Markup("").join(parts), height)

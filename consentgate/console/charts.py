"""Server-rendered SVG charts for the dashboard (no JavaScript, no library).

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` summing it
up; every bar has a ``<title>`` with its number. The same numbers are in the table
next to it, which is what screen readers are pointed to.
"""

from __future__ import annotations

from datetime import date

from markupsafe import Markup, escape

__all__ = ["COLORS", "bars", "stacked_days"]

#: Colours per method (contrast >= 3:1 against white for graphical objects, WCAG 1.4.11).
COLORS: dict[str, str] = {
    "accept_all": "#1b7f3b",
    "reject_all": "#b3261e",
    "custom": "#1f5fbf",
    "close": "#6b5b00",
    "gpc": "#7a3db8",
    "acknowledge": "#00707a",
    "opt_out": "#a0440f",
    "withdraw": "#444444",
}
_OTHER = "#555555"


def _color(name: str) -> str:
    return COLORS.get(name, _OTHER)


def stacked_days(
    title: str,
    days: list[date],
    series: list[str],
    values: dict[date, dict[str, int]],
    *,
    width: int = 720,
    height: int = 220,
) -> Markup:
    """One bar per day, its segments the series (methods) stacked."""
    pad_left, pad_bottom, pad_top = 44, 24, 8
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    peak = max([sum(values.get(d, {}).get(s, 0) for s in series) for d in days] + [1])
    step = plot_w / max(len(days), 1)
    bar_w = max(step * 0.8, 1.0)
    total = sum(sum(v.values()) for v in values.values())
    out = [
        f'<svg role="img" aria-labelledby="c-t c-d" viewBox="0 0 {width} {height}" '
        f'width="100%" class="chart" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="c-t">{escape(title)}</title>',
        f'<desc id="c-d">{total} decisions over {len(days)} days; '
        f"the busiest day had {peak if total else 0}.</desc>",
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" '
        f'y2="{pad_top + plot_h}" stroke="#333"/>',
        f'<text x="{pad_left - 6}" y="{pad_top + 10}" text-anchor="end" font-size="11">'
        f"{peak if total else 0}</text>",
        f'<text x="{pad_left - 6}" y="{pad_top + plot_h}" text-anchor="end" '
        'font-size="11">0</text>',
    ]
    for i, d in enumerate(days):
        x = pad_left + i * step + (step - bar_w) / 2
        y = pad_top + plot_h
        for s in series:
            n = values.get(d, {}).get(s, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{_color(s)}"><title>{d.isoformat()} {escape(s)}: {n}</title></rect>'
            )
    if days:
        last = len(days) - 1
        for i in sorted({0, len(days) // 2, last}):
            x = pad_left + i * step + step / 2
            anchor = "start" if i == 0 and last else "end" if i == last and last else "middle"
            if anchor != "middle":
                x = pad_left if anchor == "start" else pad_left + plot_w
            out.append(
                f'<text x="{x:.1f}" y="{height - 6}" text-anchor="{anchor}" font-size="11">'
                f"{days[i].isoformat()}</text>"
            )
    out.append("</svg>")
    return Markup("".join(out))


def bars(title: str, items: list[tuple[str, float]], *, width: int = 420) -> Markup:
    """Horizontal bars, one per ``(label, share 0..1)``."""
    row, label_w = 26, 110
    height = row * len(items) + 8
    plot_w = width - label_w - 56
    out = [
        f'<svg role="img" aria-labelledby="b-t" viewBox="0 0 {width} {height}" width="100%" '
        f'class="chart" xmlns="http://www.w3.org/2000/svg"><title id="b-t">{escape(title)}: '
        + escape(", ".join(f"{label} {share:.1%}" for label, share in items))
        + "</title>"
    ]
    for i, (label, share) in enumerate(items):
        y = 4 + i * row
        out.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{plot_w}" height="16" fill="#e8e8e8"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{plot_w * share:.1f}" height="16" '
            f'fill="#1f5fbf"/>'
            f'<text x="{label_w + plot_w + 6}" y="{y + 16}" font-size="12">{share:.1%}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))

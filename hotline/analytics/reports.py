"""The supervisors' hotspot report: one self-contained HTML page (inline SVG charts, no scripts or fonts).

What a supervisor needs to act before the calls come: how each category is
trending, where (area × category) the calls concentrate, which cells are
surging and with which cases, the largest events, what is forecast to rise,
and which words are new. :func:`build` computes it from a store's aggregates;
:func:`render` writes the page, which opens from a file, an e-mail or the
service alike.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from hotline.analytics.events import Event
from hotline.analytics.hotspots.cells import area_district, cell_cases
from hotline.analytics.hotspots.detect import Alert
from hotline.analytics.hotspots.episodes import Episode
from hotline.analytics.hotspots.forecast import CellForecast, forecast, rising
from hotline.analytics.hotspots.surges import find_surges, level_table
from hotline.analytics.hotspots.terms import Term
from hotline.case import Case
from hotline.errors import InvalidInput, NotFound
from hotline.store.base import CaseStore

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")


@dataclass
class Report:
    start: date
    end: date
    generated: datetime
    total: int
    by_category: dict[str, int]
    trend_days: list[date]
    trend: dict[str, list[int]]                      # level-1 category -> daily counts over the period
    heat_areas: list[str]
    heat_categories: list[str]
    heat: dict[tuple[str, str], int]
    alerts: list[Alert]
    episodes: list[Episode]
    alert_cases: dict[tuple[str, str, str], list[Case]]
    events: list[Event]
    forecasts: list[CellForecast]
    history_days: list[date]
    history: dict[tuple[str, str], list[int]]        # recent counts of the forecast cells
    terms: list[Term]
    notes: list[str] = field(default_factory=list)
    centers: dict[str, tuple[float, float]] = field(default_factory=dict)   # district -> (lat, lon), for the map
    located: list[tuple[float, float, int, str]] = field(default_factory=list)  # events: lat, lon, size, title

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(), "to": self.end.isoformat(), "total": self.total,
            "by_category": self.by_category,
            "alerts": [a.row() for a in self.alerts],
            "episodes": [e.to_dict() for e in self.episodes],
            "events": [e.to_dict() for e in self.events],
            "forecasts": [f.to_dict() for f in self.forecasts],
            "terms": [t.to_dict() for t in self.terms],
            "notes": self.notes,
        }


def build(store: CaseStore, start: date, end: date, level1: Callable[[str], str] = lambda category: category,
          top: int = 15, centers: dict[str, tuple[float, float]] | None = None) -> Report:
    """Compute the report over ``start``–``end`` from what the store keeps on write.

    Counts come from the daily counts, events from the kept events, new
    words from the daily term counts and the last day's cases, and only the
    few cases shown under each hotspot are read: the report costs the same
    for a city's year as for a demo's month. ``level1`` names the first
    level of a cell's category (from the taxonomy) for the trend chart.
    """
    from hotline.analytics.events import kept_events, link_events
    from hotline.analytics.hotspots.terms import emerging_in_store

    if end < start:
        raise InvalidInput(f"report end {end} is before its start {start}")
    try:
        table = level_table(store, start, end, "district")
    except NotFound:
        raise InvalidInput(f"no cases between {start} and {end}") from None
    lead = max(0, (table.start - start).days)  # days of the period before the first day counted
    period = table.counts[:, max(0, (start - table.start).days):]
    totals = period.sum(axis=1)
    if not totals.any():
        raise InvalidInput(f"no cases between {start} and {end}")
    notes: list[str] = []
    history = (start - table.start).days
    if history < 28:
        notes.append(f"历史数据仅 {history} 天，基线与预测的把握有限。" if history > 0
                     else "此前没有历史数据，基线与预测的把握有限。")

    found = find_surges(table, start, end, "district", top=top)  # the district level's surges, as the pages show them
    baseline = found.baseline  # one fit for the hotspots and the forecasts
    alerts = sorted(found.alerts, key=lambda a: -a.score)[:top]
    surges = found.episodes  # what the report lists: one row per surge, most excess calls first
    by_cell: dict[tuple[str, str, str], list[Case]] = {}
    for day, area, category in [(e.peak_day, e.area, e.category) for e in surges]:
        key = (day.isoformat(), area, category)
        if key not in by_cell:  # a few of the cell's cases on its peak day, read by key
            by_cell[key] = cell_cases(store, area, category, day, day, limit=50)[:5]

    cells = Counter[tuple[str, str]]()
    by_area, by_category, by_level1 = Counter[str](), Counter[str](), Counter[str]()
    daily: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((end - start).days + 1, dtype=np.int64))
    for row in np.flatnonzero(totals):
        (area, category), n = table.cells[row], int(totals[row])
        cells[(area, category)] += n
        by_area[area] += n
        by_category[category] += n
        by_level1[level1(category)] += n
        daily[level1(category)][lead:] += period[row]
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    trend = {name: daily[name].tolist() for name, _ in by_level1.most_common(8)}
    areas = [a for a, _ in by_area.most_common()]
    categories = [k for k, _ in by_category.most_common(15)]

    link_events(store, surges, start, end)
    largest = kept_events(store, start, end, min_size=3, top=60)  # the map's dots; the first ten listed, with their calls
    events = largest[:10]
    located = [(e.location.lat, e.location.lon, e.size, e.title) for e in largest if e.location is not None]

    forecasts: list[CellForecast] = []
    recent: dict[tuple[str, str], list[int]] = {}
    history_days = [end - timedelta(days=27 - i) for i in range(28)]
    if table.counts.shape[1] >= 14:
        forecasts = rising(forecast(table, horizon=14, baseline=baseline), top=8)
        last = table.day_index(end)
        for f in forecasts:
            at = table.cells.index((f.area, f.category))
            recent[(f.area, f.category)] = table.counts[at, max(0, last - 27) : last + 1].tolist()
    else:
        notes.append("数据不足 14 天，未作预测。")

    return Report(
        start=start, end=end, generated=datetime.now().replace(microsecond=0), total=sum(cells.values()),
        by_category=dict(by_level1.most_common()), trend_days=days, trend=trend, heat_areas=areas,
        heat_categories=categories, heat=dict(cells), alerts=alerts, episodes=surges, alert_cases=by_cell, events=events,
        forecasts=forecasts, history_days=history_days, history=recent, terms=emerging_in_store(store, end, top=15),
        notes=notes, centers=dict(centers or {}), located=located,
    )


# ---------------------------------------------------------------- charts (inline SVG)
def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def line_chart(days: Sequence[date], series: Mapping[str, Sequence[float]], width: int = 760, height: int = 260,
               title: str = "", band: tuple[Sequence[float], Sequence[float]] | None = None,
               band_days: Sequence[date] | None = None) -> str:
    """Lines over days with a legend; an optional shaded band (a forecast interval) over ``band_days``."""
    left, right, top, bottom = 44, 150, 24, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    all_days = list(days) + list(band_days or [])
    values = [v for s in series.values() for v in s] + (list(band[1]) if band else [])
    peak, ticks = _ticks(max(values + [1.0]))
    n = max(len(all_days) - 1, 1)

    def x(i: int) -> float:
        return left + plot_w * i / n

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    parts = [f'<svg class="chart" role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for v in ticks:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{v:.0f}</text>')
    for i in sorted({0, n // 2, n}):
        if i < len(all_days):
            parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle" font-size="11">'
                         f'{all_days[i]:%m-%d}</text>')
    if band and band_days:
        offset = len(days)
        upper = [f"{x(offset + i):.1f},{y(v):.1f}" for i, v in enumerate(band[1])]
        lower = [f"{x(offset + i):.1f},{y(v):.1f}" for i, v in reversed(list(enumerate(band[0])))]
        parts.append(f'<polygon class="band" points="{" ".join(upper + lower)}" fill="#1f77b4" fill-opacity="0.18"/>')
    for k, (name, values_) in enumerate(series.items()):
        start = 0 if len(values_) == len(days) or not band_days else len(days)
        points = " ".join(f"{x(start + i):.1f},{y(v):.1f}" for i, v in enumerate(values_))
        color = PALETTE[k % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if start else ""
        parts.append(f'<polyline class="series" points="{points}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        parts.append(f'<rect x="{left + plot_w + 12}" y="{top + 16 * k}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{left + plot_w + 26}" y="{top + 16 * k + 9}" font-size="12">{_esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _clip(polygon: list[tuple[float, float]], a: tuple[float, float], b: tuple[float, float]) -> list[tuple[float, float]]:
    """The part of ``polygon`` nearer to ``a`` than to ``b`` (one Sutherland–Hodgman step on their bisector)."""
    nx, ny = b[0] - a[0], b[1] - a[1]
    c = (b[0] ** 2 + b[1] ** 2 - a[0] ** 2 - a[1] ** 2) / 2

    def inside(p: tuple[float, float]) -> bool:
        return p[0] * nx + p[1] * ny <= c

    def cross(p: tuple[float, float], q: tuple[float, float]) -> tuple[float, float]:
        dp, dq = p[0] * nx + p[1] * ny - c, q[0] * nx + q[1] * ny - c
        t = dp / (dp - dq)
        return p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])

    out: list[tuple[float, float]] = []
    for i, p in enumerate(polygon):
        q = polygon[(i + 1) % len(polygon)]
        if inside(p):
            out.append(p)
            if not inside(q):
                out.append(cross(p, q))
        elif inside(q):
            out.append(cross(p, q))
    return out


def district_cells(centers: dict[str, tuple[float, float]], margin: float) -> dict[str, list[tuple[float, float]]]:
    """Each district's area on a schematic map: the points nearer its centre than any other's (Voronoi), within
    the centres' bounding box widened by ``margin`` (no boundaries ship with the gazetteer)."""
    xs, ys = [p[0] for p in centers.values()], [p[1] for p in centers.values()]
    box = [(min(xs) - margin, min(ys) - margin), (max(xs) + margin, min(ys) - margin),
           (max(xs) + margin, max(ys) + margin), (min(xs) - margin, max(ys) + margin)]
    cells = {}
    for name, a in centers.items():
        polygon = box
        for other, b in centers.items():
            if other != name and polygon:
                polygon = _clip(polygon, a, b)
        cells[name] = polygon
    return cells


def map_chart(centers: dict[str, tuple[float, float]], excess: dict[str, float], labels: dict[str, list[str]],
              events: Sequence[tuple[float, float, int, str]], width: int = 760, height: int = 520,
              title: str = "") -> str:
    """A schematic map: each district's area (nearer its gazetteer centre than any other's), shaded by the calls
    in excess of its surges, with its largest surges named, and the events as dots where their calls were."""
    if not centers:
        return ""
    lat0 = sum(lat for lat, _ in centers.values()) / len(centers)
    scale_x = math.cos(math.radians(lat0))
    plane = {name: (lon * scale_x, -lat) for name, (lat, lon) in centers.items()}
    spread = max(max(p[0] for p in plane.values()) - min(p[0] for p in plane.values()),
                 max(p[1] for p in plane.values()) - min(p[1] for p in plane.values()), 0.05)
    cells = district_cells(plane, margin=0.18 * spread)
    corners = [p for polygon in cells.values() for p in polygon]
    x0, y0 = min(p[0] for p in corners), min(p[1] for p in corners)
    x1, y1 = max(p[0] for p in corners), max(p[1] for p in corners)
    pad = 16
    k = min((width * 0.55 - 2 * pad) / (x1 - x0), (height - 2 * pad - 20) / (y1 - y0))  # the rest: the list

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return pad + (p[0] - x0) * k, pad + 20 + (p[1] - y0) * k

    peak = max(excess.values(), default=0.0)
    parts = [f'<svg class="chart map" role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{pad}" y="14" font-size="12" fill="#555">{_esc(title)}</text>']
    for name, polygon in cells.items():
        share = excess.get(name, 0.0) / peak if peak > 0 else 0.0
        fill = _heat_color(round(100 * share), 100) if share > 0 else "#f7f7f7"
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(at, polygon))
        parts.append(f'<polygon class="district" points="{points}" fill="{fill}" stroke="#888" stroke-width="1">'
                     f'<title>{_esc(name)}：多出 {excess.get(name, 0.0):.0f} 件</title></polygon>')
    for lat, lon, size, label in events:
        x, y = at((lon * scale_x, -lat))
        parts.append(f'<circle class="event" cx="{x:.1f}" cy="{y:.1f}" r="{2 + 1.6 * math.sqrt(size):.1f}" '
                     f'fill="#1f77b4" fill-opacity="0.55" stroke="#fff"><title>{_esc(label)}（{size} 件）</title></circle>')
    for name, polygon in cells.items():  # names at their area's middle: centres of neighbouring districts crowd
        if polygon:
            x, y = at((sum(p[0] for p in polygon) / len(polygon), sum(p[1] for p in polygon) / len(polygon)))
            parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" font-size="13" font-weight="bold">'
                         f'{_esc(name)}</text>')
    # Beside the map: the districts by excess calls, each with its largest surges.
    left, line = pad + (x1 - x0) * k + 28, 44
    for name in sorted(centers, key=lambda n: -excess.get(n, 0.0)):
        if line > height - 20:
            break
        parts.append(f'<text x="{left:.1f}" y="{line}" font-size="13" font-weight="bold">{_esc(name)}'
                     f'<tspan font-weight="normal" fill="#555">  多出 {excess.get(name, 0.0):.0f} 件</tspan></text>')
        for label in labels.get(name, [])[:3]:
            line += 16
            parts.append(f'<text x="{left + 12:.1f}" y="{line}" font-size="12" fill="#7a2e00">{_esc(label)}</text>')
        line += 24
    parts.append("</svg>")
    return "".join(parts)


def _ticks(peak: float) -> tuple[float, list[float]]:
    """(the axis top, its ticks): whole steps of 1, 2 or 5 × 10^k, so a small count reads 0, 1, 2, 3 and never
    0, 0, 1, 2, 2."""
    raw = max(peak, 1.0) / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0)
    top = step * math.ceil(max(peak, 1.0) / step)
    return top, [step * i for i in range(int(round(top / step)) + 1)]


def bar_chart(items: Sequence[tuple[str, float]], width: int = 760, title: str = "") -> str:
    """Horizontal bars, largest first."""
    row, left = 22, 170
    height = row * len(items) + 10
    peak = max([v for _, v in items] + [1.0])
    parts = [f'<svg class="chart" role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value) in enumerate(items):
        w = (width - left - 60) * value / peak
        parts.append(f'<text x="{left - 8}" y="{i * row + 16}" text-anchor="end" font-size="12">{_esc(label)}</text>')
        parts.append(f'<rect class="bar" x="{left}" y="{i * row + 4}" width="{w:.1f}" height="{row - 8}" fill="#1f77b4"/>')
        parts.append(f'<text x="{left + w + 6:.1f}" y="{i * row + 16}" font-size="12">{value:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _heat_color(value: int, peak: int) -> str:
    share = value / peak if peak else 0.0
    light = int(255 - 180 * share)
    return f"rgb(255,{light},{light})"


STYLE = """
body{font-family:-apple-system,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:4px 6px;text-align:right}
th{background:#f5f5f5} td.l,th.l{text-align:left} .muted{color:#777;font-size:12px} .note{color:#a15c00}
.cases{font-size:12px;color:#444;margin:2px 0 8px 16px} figure{margin:8px 0}
"""


def _surge_map(report: Report) -> str:
    """The map of the report: districts shaded by their surges' excess calls, the largest named, events as dots."""
    if not report.centers:
        return ""
    excess: dict[str, float] = defaultdict(float)
    labels: dict[str, list[str]] = defaultdict(list)
    for e in report.episodes:  # most excess first
        district = area_district(e.area)
        excess[district] += max(e.excess, 0.0)
        labels[district].append(f"{e.category} +{e.excess:.0f}")
    return map_chart(report.centers, dict(excess), dict(labels), report.located,
                     title="示意图（各区范围按其中心划分，非行政边界）：颜色越深，激增多出的工单越多；蓝点为事件，越大工单越多")


def render(report: Report) -> str:
    """The report as one HTML page (``hotline/templates/report.html``; the charts are our own SVG)."""
    from markupsafe import Markup

    from hotline.pages import render as render_page

    peak = max(report.heat.values(), default=0)
    charts = {
        "trend": Markup(line_chart(report.trend_days, report.trend, title="各一级类别每日工单量")),
        "categories": Markup(bar_chart(list(report.by_category.items())[:12], title="类别工单量")),
        "events": Markup(bar_chart([(e.title[:14], e.size) for e in report.events], title="事件工单数")),
        "terms": Markup(bar_chart([(t.term, t.observed) for t in report.terms[:12]], title="新词出现次数")),
        "map": Markup(_surge_map(report)),
        "forecasts": [Markup(line_chart(report.history_days, {"近四周": report.history.get((f.area, f.category), []),
                                                              "预测": list(f.mean)},
                                        band=(list(f.low), list(f.high)), band_days=f.days, height=200,
                                        title=f"{f.area} {f.category} 预测"))
                      for f in report.forecasts[:4]],
    }
    return render_page("report.html", r=report, style=Markup(STYLE), charts=charts,
                       heat_color=lambda value: _heat_color(value, peak),
                       peak_week=lambda f: float(np.sum(f.mean[f.peak_week])))

"""The weekly brief (周报): the week's work list as a page to read and a PDF to send.

Drawn from :mod:`hotline.analytics.worklist` only — the same items, states and
forecasts a supervisor sees and exports — so the brief never says something
the work list does not. The PDF is laid out with ReportLab; Chinese text
needs a font the PDF can carry: a TrueType CJK font of the system (WenQuanYi,
which ``make test`` installs) is embedded, else the PDF names Adobe's
standard ``STSong-Light`` and the reader supplies it.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from hotline.analytics.worklist import KIND_NAMES, STATE_NAMES, WorkItem

#: TrueType CJK fonts looked for, in order (a .ttc's first face). OpenType/CFF fonts cannot be embedded here.
FONT_FILES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/STHeiti Light.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)


@dataclass
class Brief:
    start: date
    end: date
    generated: datetime
    items: list[WorkItem]

    @property
    def by_state(self) -> dict[str, int]:
        counts = Counter(i.state for i in self.items)
        return {STATE_NAMES[s]: counts[s] for s in STATE_NAMES if counts[s]}

    @property
    def surges(self) -> list[WorkItem]:
        return [i for i in self.items if i.kind == "surge"]

    @property
    def rising(self) -> list[WorkItem]:
        return [i for i in self.items if i.kind == "rising"]

    @property
    def open(self) -> list[WorkItem]:
        """Items nobody has closed yet (new, acknowledged or assigned): what the brief asks to act on."""
        return [i for i in self.items if i.state in ("new", "acknowledged", "assigned")]


def week_of(end: date) -> tuple[date, date]:
    """The seven days ending ``end``."""
    return end - timedelta(days=6), end


def render_html(brief: Brief) -> str:
    """The brief as one self-contained HTML page (``hotline/templates/brief.html``)."""
    from markupsafe import Markup

    from hotline.analytics.reports import STYLE
    from hotline.pages import render as render_page

    return render_page("brief.html", b=brief, style=Markup(STYLE), kinds=KIND_NAMES)


def _font() -> str:
    """The name of a registered font that can write Chinese (embedded when a TrueType one is found)."""
    from reportlab.pdfbase import pdfmetrics

    for path in FONT_FILES:
        if Path(path).is_file():
            from reportlab.pdfbase.ttfonts import TTFont

            try:
                if "hotline-cjk" not in pdfmetrics.getRegisteredFontNames():
                    pdfmetrics.registerFont(TTFont("hotline-cjk", path, subfontIndex=0))
                return "hotline-cjk"
            except Exception:  # noqa: BLE001 - a font ReportLab cannot read: try the next, then the standard one
                continue
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"


def render_pdf(brief: Brief) -> bytes:
    """The brief as an A4 PDF: the week's figures, the items to act on with their departments, events,
    calls and forecasts, and what was decided."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = _font()
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=13, wordWrap="CJK")
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=11, textColor=colors.HexColor("#555555"))
    heading = ParagraphStyle("heading", parent=body, fontSize=13, leading=18, spaceBefore=8, spaceAfter=4)
    title = ParagraphStyle("title", parent=body, fontSize=17, leading=24, spaceAfter=6)

    def text(value: object, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(_escape(str(value)).replace("\n", "<br/>"), style)

    story: list[object] = [
        text(f"12345 热线未诉先办周报：{brief.start} 至 {brief.end}", title),
        text(f"生成时间 {brief.generated:%Y-%m-%d %H:%M}。共 {len(brief.items)} 项："
             f"激增 {len(brief.surges)} 项，预计上升 {len(brief.rising)} 项；"
             + "，".join(f"{name} {n}" for name, n in brief.by_state.items()) + "。", body),
        Spacer(1, 4 * mm),
    ]
    grid = TableStyle([("FONT", (0, 0), (-1, -1), font, 8), ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#cccccc")),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f0f3f7")), ("VALIGN", (0, 0), (-1, -1), "TOP")])
    for label, items in (("需要处理的事项", brief.open),
                         ("已办结或已排除", [i for i in brief.items if i not in brief.open])):
        story.append(text(label, heading))
        if not items:
            story.append(text("无。", body))
            continue
        rows = [[text(h, small) for h in ("类型 / 状态", "区域 · 类别", "实际 / 预计", "责任单位", "说明、事件与代表工单",
                                           "未来 7 日")]]
        for item in items:
            detail = [item.explanation]
            detail += [f"事件：{e['title']}（{e['size']} 件）" for e in item.events[:2]]
            detail += [f"关键词：{'、'.join(item.terms)}"] if item.terms else []
            detail += [f"{c['id']}：{c['title']}" for c in item.calls[:2]]
            decision = item.decision
            if decision:
                detail.append(f"{STATE_NAMES[decision.state]}（{decision.by}，{decision.at:%m-%d %H:%M}）"
                              + (f"：交办 {decision.department}" if decision.department else "")
                              + (f"；{decision.note}" if decision.note else ""))
            ahead = (f"约 {item.forecast_total:.0f} 件\n单日至多 {max(f['high'] for f in item.forecast)} 件"
                     if item.forecast else "—")
            rows.append([text(f"{KIND_NAMES[item.kind]}\n{STATE_NAMES[item.state]}"),
                         text(f"{item.area} · {item.category}\n{item.start:%m-%d}–{item.end:%m-%d}"),
                         text(f"{item.observed} / {item.expected:.1f}"),
                         text("、".join(item.departments[:2]) or "—"),
                         Paragraph("<br/>".join(_escape(line) for line in detail), small), text(ahead)])
        table = Table(rows, colWidths=[18 * mm, 32 * mm, 17 * mm, 24 * mm, 70 * mm, 19 * mm], repeatRows=1)
        table.setStyle(grid)
        story.append(table)
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, leftMargin=12 * mm, rightMargin=12 * mm, topMargin=14 * mm,
                      bottomMargin=14 * mm, title=f"12345 未诉先办周报 {brief.start}–{brief.end}",
                      author="hotline").build(story)
    return out.getvalue()


def _escape(value: str) -> str:
    from xml.sax.saxutils import escape

    return escape(value)


def build(items: Sequence[WorkItem], end: date) -> Brief:
    start, end = week_of(end)
    return Brief(start, end, datetime.now().replace(microsecond=0), list(items))

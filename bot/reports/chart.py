"""The adherence chart: patients × course days, one coloured cell per day, sized for a phone.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global figure state), so
it can run in a worker thread. Each cell also carries its mark (✓ ✗ ? ·) so the chart reads
without colour vision; today's cell is outlined. Labels use the coordinator's language when a
font that can draw it is installed (Chinese needs a CJK font, e.g. fonts-noto-cjk); otherwise
the chart falls back to English labels and the caption carries the localized text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import matplotlib

matplotlib.use("Agg")

from matplotlib import font_manager, ft2font  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from bot.i18n import Translator  # noqa: E402

# Cell codes, in colour-map order.
NONE, SCHEDULED, TAKEN, MISSED, NOT_REPORTED, HELD, BEFORE_REGISTRATION = range(7)
CODES = {"scheduled": SCHEDULED, "taken": TAKEN, "missed": MISSED, "not_reported": NOT_REPORTED, "held": HELD,
         "before_registration": BEFORE_REGISTRATION}
COLOURS = ["#ffffff", "#e6e6e6", "#2e7d32", "#c62828", "#f9a825", "#5c6bc0", "#bdbdbd"]
MARKS = {SCHEDULED: "·", TAKEN: "✓", MISSED: "✗", NOT_REPORTED: "?", HELD: "H", BEFORE_REGISTRATION: "-"}
ROWS_PER_PAGE = 25
DPI = 150
CJK_SAMPLE = "研究药物"


@dataclass(frozen=True)
class ChartRow:
    label: str  # e.g. "NJ-017 C2" (ASCII, drawable with any font)
    states: list[str]  # dose-day states in day order (may be shorter than the course)
    today: int | None  # 1-based course day of today, if on course


@dataclass(frozen=True)
class ChartPage:
    png: bytes
    rows: list[str]
    columns: int
    matrix: list[list[int]]
    width_px: int
    height_px: int
    labels_locale: str


@cache
def cjk_font() -> str | None:
    """The name of an installed font that can draw Chinese, if any."""
    for entry in font_manager.fontManager.ttflist:
        if "last resort" in entry.name.lower():
            continue
        try:
            charmap = ft2font.FT2Font(entry.fname).get_charmap()
        except (OSError, RuntimeError, ValueError):
            continue
        if all(ord(ch) in charmap for ch in CJK_SAMPLE):
            return entry.name
    return None


def label_translator(t: Translator) -> Translator:
    """The coordinator's own language if the chart can draw it, else English."""
    if t.is_zh and cjk_font() is None:
        return Translator("en", t.tz)
    return t


def matrix_of(rows: list[ChartRow], columns: int) -> list[list[int]]:
    return [[CODES.get(row.states[i], NONE) if i < len(row.states) else NONE for i in range(columns)] for row in rows]


def title_of(lt: Translator, site, day) -> str:
    return lt._("Adherence: {site}, {date}", site=site.name(lt.locale), date=lt.date(day))


def build_figure(rows: list[ChartRow], *, columns: int, t: Translator, site, day) -> Figure:
    lt = label_translator(t)
    matrix = matrix_of(rows, columns)
    body = 0.38 * max(len(rows), 1)
    header, footer = 1.15, 0.55
    height = header + body + footer
    figure = Figure(figsize=(8, height), dpi=DPI)
    FigureCanvasAgg(figure)
    family = [cjk_font(), "DejaVu Sans"] if lt.is_zh else ["DejaVu Sans"]
    axes = figure.add_axes((0.19, footer / height, 0.78, body / height))
    axes.imshow(matrix or [[NONE] * columns], cmap=ListedColormap(COLOURS), vmin=0, vmax=len(COLOURS) - 1,
                aspect="auto", interpolation="nearest")
    for y, (row, codes) in enumerate(zip(rows, matrix, strict=True)):
        for x, code in enumerate(codes):
            if code != NONE:
                axes.text(x, y, MARKS[code], ha="center", va="center", fontsize=11, family="DejaVu Sans",
                          color="white" if code in (TAKEN, MISSED) else "#333333")
        if row.today:
            axes.add_patch(Rectangle((row.today - 1.5, y - 0.5), 1, 1, fill=False, linewidth=2.5, edgecolor="#1a237e",
                                     zorder=3))
    axes.set_xticks(range(columns), [str(d) for d in range(1, columns + 1)], fontsize=11)
    axes.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=11, family="DejaVu Sans")
    axes.xaxis.tick_top()
    axes.xaxis.set_label_position("top")
    axes.set_xticks([x - 0.5 for x in range(1, columns)], minor=True)
    axes.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    axes.grid(which="minor", color="white", linewidth=1.5)
    axes.tick_params(which="minor", length=0)
    axes.set_xlabel(lt._("Course day"), fontsize=11, family=family)
    figure.suptitle(title_of(lt, site, day), fontsize=14, family=family, y=1 - 0.12 / height, va="top")
    legend = [Patch(facecolor=COLOURS[TAKEN], label="✓ " + lt._("taken")),
              Patch(facecolor=COLOURS[MISSED], label="✗ " + lt._("not taken")),
              Patch(facecolor=COLOURS[NOT_REPORTED], label="? " + lt._("no answer")),
              Patch(facecolor=COLOURS[SCHEDULED], label="· " + lt._("to come")),
              Patch(facecolor=COLOURS[HELD], label="H " + lt._("on hold by the study team"))]
    figure.legend(handles=legend, loc="lower center", ncol=4, frameon=False, prop={"family": family, "size": 11},
                  bbox_to_anchor=(0.5, 0.0))
    return figure


def to_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)
    return buffer.getvalue()


def render_pages(rows: list[ChartRow], *, columns: int, t: Translator, site, day,
                 rows_per_page: int = ROWS_PER_PAGE) -> list[ChartPage]:
    """One PNG per page of patients, so a long site list stays legible after Telegram's resize."""
    pages = []
    for start in range(0, max(len(rows), 1), rows_per_page):
        chunk = rows[start:start + rows_per_page]
        figure = build_figure(chunk, columns=columns, t=t, site=site, day=day)
        width, height = figure.canvas.get_width_height()
        pages.append(ChartPage(to_png(figure), [r.label for r in chunk], columns, matrix_of(chunk, columns), width,
                               height, label_translator(t).locale))
    return pages

"""The adherence chart: patients × course days, one coloured cell per day, sized for a phone.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global figure state), so
it can run in a worker thread. Each cell also carries its mark (✓ ✗ ? ·) so the chart reads
without colour vision; today's cell is outlined.

Chinese labels are drawn with the font shipped in bot/reports/fonts (a subset of Noto Sans SC,
SIL OFL 1.1: GB 2312, ASCII, Latin-1, CJK punctuation and every character of our catalogs and
the example config), so a fresh machine with no CJK font still gets a Chinese chart. Should a
label hold a character the font lacks, that chart falls back to English labels.

matplotlib is imported on the first chart only: start-up and memory do not pay for it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from bot.i18n import Translator

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Cell codes, in colour-map order.
NONE, SCHEDULED, TAKEN, MISSED, NOT_REPORTED, HELD, BEFORE_REGISTRATION = range(7)
CODES = {"scheduled": SCHEDULED, "taken": TAKEN, "missed": MISSED, "not_reported": NOT_REPORTED, "held": HELD,
         "before_registration": BEFORE_REGISTRATION}
COLOURS = ["#ffffff", "#e6e6e6", "#2e7d32", "#c62828", "#f9a825", "#5c6bc0", "#bdbdbd"]
MARKS = {SCHEDULED: "·", TAKEN: "✓", MISSED: "✗", NOT_REPORTED: "?", HELD: "H", BEFORE_REGISTRATION: "-"}
ROWS_PER_PAGE = 25
DPI = 150
CJK_FONT_FILE = Path(__file__).with_name("fonts") / "NotoSansSC-Subset.otf"


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
def _matplotlib():
    """Import matplotlib (Agg, no GUI) and register the bundled CJK font, once."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(CJK_FONT_FILE))
    return matplotlib


@cache
def _font_charmap() -> frozenset[int]:
    _matplotlib()
    from matplotlib import ft2font

    return frozenset(ft2font.FT2Font(str(CJK_FONT_FILE)).get_charmap())


@cache
def cjk_font() -> str:
    """The family name of the bundled CJK font (registered with matplotlib on first use)."""
    _matplotlib()
    from matplotlib import font_manager

    return font_manager.FontProperties(fname=str(CJK_FONT_FILE)).get_name()


def font_covers(text: str) -> bool:
    return all(ord(ch) in _font_charmap() or ch.isspace() for ch in text)


def label_texts(t: Translator, site, day) -> list[str]:
    """Every label drawn in the coordinator's language (title, axis, legend)."""
    return [title_of(t, site, day), t._("Course day"), t._("taken"), t._("not taken"), t._("no answer"),
            t._("to come")]


def label_translator(t: Translator, site=None, day=None) -> Translator:
    """The coordinator's own language, unless a label holds a character the font cannot draw."""
    if t.is_zh and site is not None and not all(font_covers(text) for text in label_texts(t, site, day)):
        return Translator("en", t.tz)
    return t


def matrix_of(rows: list[ChartRow], columns: int) -> list[list[int]]:
    return [[CODES.get(row.states[i], NONE) if i < len(row.states) else NONE for i in range(columns)] for row in rows]


def title_of(lt: Translator, site, day) -> str:
    return lt._("Adherence: {site}, {date}", site=site.name(lt.locale), date=lt.date(day))


def build_figure(rows: list[ChartRow], *, columns: int, t: Translator, site, day) -> Figure:
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    lt = label_translator(t, site, day)
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
                               height, label_translator(t, site, day).locale))
    return pages

"""A leaderboard as one self-contained HTML page: table with 95% CIs, plus embedded plots.

Nothing on the page is fetched from elsewhere: styles are inline, plots are base64 PNG `data:`
URIs drawn with matplotlib's Agg canvas (no pyplot, so no global state). The same plots are
available as PNG bytes (`render_png`) or files (`write_pngs`) to sit next to a leaderboard CSV.
Rows are those of `leaderboard.build_leaderboard` or `leaderboard.read_csv`: values may be
floats or strings, and a missing value (no CI for a reported row) is an empty string. A run
marked for its coverage (`viubench.coverage`) is shaded, its status and counts are in the table,
its cells that count unanswered samples say so, and a warning above the table names it.
"""

from __future__ import annotations

import base64
import html
import io
import os
from typing import Any, Mapping, Sequence

from .coverage import (FAILED, INCOMPLETE, cell_mark, failed_text, is_marked, number,
                       row_status, row_warning)
from .leaderboard import (COVERAGE_HEADINGS, OVERALL, Column, cell_names, coverage_cells,
                          format_cell, groups)

Row = Mapping[str, Any]
Cell = tuple[float | None, float | None, float | None]    # value, ci_low, ci_high (x100)

MEASURED_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
AGG = ' class="agg"'
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p")

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;
color:#222;background:#fff}
h1{font-size:1.5em;margin:0 0 .4em}h2{font-size:1.15em;margin:1.4em 0 .4em}
p,li{max-width:70em;line-height:1.4}
table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 5px;text-align:right;vertical-align:top}
th{background:#eef1f5}th.agg,td.agg{background:#f6f7fa}
td.model,th.model{text-align:left;white-space:nowrap}
tr.measured td.model{font-weight:600}tr.measured{background:#f2f8ff}
.badge{font-size:10px;border-radius:3px;padding:0 3px;margin-left:4px;font-weight:normal}
.badge.m{background:#1f77b4;color:#fff}.badge.r{background:#ddd;color:#333}
.ci{display:block;color:#666;font-size:10px;white-space:nowrap}
.bar{position:relative;height:4px;background:#eee;margin-top:2px}
.bar span{position:absolute;top:0;height:4px;background:#1f77b4}
.bar i{position:absolute;top:-2px;width:2px;height:8px;background:#000}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}
.notes li,.cites li{font-size:13px}
tr.failed,tr.failed td{background:#fde8e8}tr.incomplete,tr.incomplete td{background:#fff6e0}
td.failed{color:#a00;font-weight:600}.warning{color:#a00}
"""


def cell(row: Row, name: str) -> Cell:
    """A cell's score and 95% CI bounds, each None where the row does not have it."""
    return (number(row.get(name)), number(row.get(f"{name} ci_low")),
            number(row.get(f"{name} ci_high")))


def is_measured(row: Row) -> bool:
    return str(row.get("source", "")).strip() == "measured"


def citation(row: Row) -> str:
    """The citation of a reported row ('reported: X' -> 'X'); '' for measured rows."""
    source = str(row.get("source", "")).strip()
    return "" if is_measured(row) else source.split(":", 1)[-1].strip() or source


def plot_label(row: Row) -> str:
    """A row's name in a plot: '(reported)' for published rows, '[failed]' / '[incomplete]'
    for marked ones."""
    label = str(row.get("model", "")) + ("" if is_measured(row) else " (reported)")
    return label + (f" [{row_status(row)}]" if is_marked(row) else "")


# ----------------------------------------------------------------------------- plots

def _new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _yerr(cells: Sequence[Cell]) -> tuple[list[float], list[float]]:
    """Asymmetric error bar lengths; 0 where a CI is missing, or where rounding put the value
    outside its printed CI (Matplotlib refuses negative lengths)."""
    below = [max(0.0, v - lo) if v is not None and lo is not None else 0.0 for v, lo, _ in cells]
    above = [max(0.0, hi - v) if v is not None and hi is not None else 0.0 for v, _, hi in cells]
    return below, above


def plot_cells(rows: Sequence[Row], columns: Sequence[Column]) -> bytes:
    """Every cell: grouped bars with 95% CI error bars for measured rows, a marker per
    reported row. Sub-columns, then the group averages and Overall after a dashed line."""
    names = cell_names(columns)
    measured = [row for row in rows if is_measured(row)]
    reported = [row for row in rows if not is_measured(row)]
    figure = _new_figure(max(10.0, 0.9 * len(names)), 5.0)
    axes = figure.add_subplot()
    width = 0.8 / max(len(measured), 1)
    for i, row in enumerate(measured):
        cells = [cell(row, name) for name in names]
        xs = [k - 0.4 + width * (i + 0.5) for k in range(len(names))]
        heights = [v if v is not None else 0.0 for v, _, _ in cells]
        axes.bar(xs, heights, width, yerr=_yerr(cells), capsize=2, label=plot_label(row),
                 color=MEASURED_COLOURS[i % len(MEASURED_COLOURS)], alpha=0.85,
                 error_kw={"elinewidth": 1, "ecolor": "#333"})
    palette = _reported_colours(len(reported))
    for i, row in enumerate(reported):
        points = [(k, cell(row, name)[0]) for k, name in enumerate(names)]
        points = [(k, v) for k, v in points if v is not None]
        axes.scatter([k for k, _ in points], [v for _, v in points], s=22, zorder=3,
                     marker=MARKERS[i % len(MARKERS)], color=palette[i],
                     edgecolors="black", linewidths=0.4, label=plot_label(row))
    axes.axvline(len(columns) - 0.5, color="#888", linestyle="--", linewidth=1)
    axes.set_xticks(range(len(names)), names, rotation=35, ha="right")
    axes.set_xlim(-0.6, len(names) - 0.4)
    axes.set_ylim(0, 100)
    axes.set_ylabel("score (x100), 95% CI")
    axes.set_title("Every column: measured (bars, 95% CI) and reported (markers)")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _png(figure)


def _reported_colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(count)]


def plot_overall(rows: Sequence[Row], name: str = OVERALL) -> bytes:
    """One horizontal bar per model for one cell (default Overall), best first, with CIs."""
    ranked = [(cell(row, name), row) for row in rows if cell(row, name)[0] is not None]
    ranked.sort(key=lambda item: item[0][0] or 0.0, reverse=True)
    figure = _new_figure(9.0, max(2.5, 0.32 * len(ranked) + 1.2))
    axes = figure.add_subplot()
    ys = list(range(len(ranked)))
    cells = [c for c, _ in ranked]
    for measured, colour in ((True, MEASURED_COLOURS[0]), (False, "#aaaaaa")):
        picked = [(y, c) for y, (c, row) in zip(ys, ranked) if is_measured(row) == measured]
        if picked:
            axes.barh([y for y, _ in picked], [c[0] for _, c in picked], color=colour,
                      xerr=_yerr([c for _, c in picked]) if measured else None, capsize=3,
                      error_kw={"elinewidth": 1, "ecolor": "#333"})
    axes.set_yticks(ys, [plot_label(row) for _, row in ranked], fontsize=9)
    axes.invert_yaxis()
    for y, (value, _, high), (_, row) in zip(ys, cells, ranked):
        axes.text((high if high is not None else value or 0.0) + 1, y, format_cell(row, name)
                  .split(" [")[0], va="center", fontsize=8)
    axes.set_xlim(0, 105)
    axes.set_xlabel(f"{name} score (x100); measured with 95% CI (blue), reported (grey)")
    axes.set_title(f"{name} per model")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def render_png(rows: Sequence[Row], columns: Sequence[Column]) -> list[tuple[str, bytes]]:
    """The page's plots as (title, PNG bytes), in page order."""
    return [("Every column", plot_cells(rows, columns)),
            (f"{OVERALL} per model", plot_overall(rows))]


def write_pngs(stem: str, rows: Sequence[Row], columns: Sequence[Column]) -> list[str]:
    """Write the plots as `<stem>-columns.png` and `<stem>-overall.png`; returns the paths."""
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    paths = []
    for suffix, (_, data) in zip(("columns", "overall"), render_png(rows, columns)):
        path = f"{stem}-{suffix}.png"
        with open(path, "wb") as handle:
            handle.write(data)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- page

def _tip(row: Row, name: str) -> str:
    """The tooltip of a cell: its n, and how many of them were answered when known."""
    n, answered = number(row.get(f"{name} n")), number(row.get(f"{name} answered"))
    if n is None:
        return ""
    known = f", {int(answered)} answered" if answered is not None else ""
    return f' title="{html.escape(name)}: n={int(n)}{known}"'


def _td(row: Row, name: str, aggregate: bool) -> str:
    """One score cell: value, its CI underneath and a 0-100 CI bar; n as tooltip. A cell of a
    marked row that counts unanswered samples: 'failed' with its count, or the value with *."""
    value, low, high = cell(row, name)
    css = AGG if aggregate else ""
    if value is None:
        return f"<td{css}>–</td>"
    tip, mark = _tip(row, name), cell_mark(row, name)
    if mark == FAILED:
        detail = failed_text(row, name).removeprefix("failed (").removesuffix(")")
        return f'<td class="failed"{tip}>failed<span class="ci">{detail}</span></td>'
    star = "*" if mark == INCOMPLETE else ""
    if low is None or high is None:
        return f"<td{css}{tip}>{value:.1f}{star}</td>"
    left, span = max(low, 0.0), max(min(high, 100.0) - max(low, 0.0), 0.5)
    bar = (f'<div class="bar"><span style="left:{left:.1f}%;width:{span:.1f}%"></span>'
           f'<i style="left:{min(max(value, 0.0), 99.0):.1f}%"></i></div>')
    return (f"<td{css}{tip}>{value:.1f}{star}<span class=\"ci\">[{low:.1f}, {high:.1f}]</span>"
            f"{bar}</td>")


def _model_td(row: Row, footnotes: dict[str, int]) -> str:
    model = html.escape(str(row.get("model", "")))
    if is_measured(row):
        run = html.escape(str(row.get("run", "")), quote=True)
        return (f'<td class="model" title="run: {run}">{model}'
                '<span class="badge m">measured</span></td>')
    cite = citation(row)
    number_ = footnotes.setdefault(cite, len(footnotes) + 1)
    return (f'<td class="model" title="{html.escape(str(row.get("source", "")), quote=True)}">'
            f'{model}<span class="badge r">reported</span>'
            f'<sup><a href="#cite{number_}">[{number_}]</a></sup></td>')


def table_html(rows: Sequence[Row], columns: Sequence[Column]) -> tuple[str, dict[str, int]]:
    """The leaderboard table and the citations its reported rows refer to (text -> number)."""
    names = cell_names(columns)
    aggregate = set(names[len(columns):])
    head = "".join(f"<th>{html.escape(name)}</th>" for name in COVERAGE_HEADINGS) + "".join(
        f"<th{AGG if name in aggregate else ''}>{html.escape(name)}</th>" for name in names)
    footnotes: dict[str, int] = {}
    body = []
    for row in rows:
        kind = ("measured" if is_measured(row) else "reported") + (
            f" {row_status(row)}" if is_marked(row) else "")
        counts = "".join(f"<td>{html.escape(text)}</td>" for text in coverage_cells(row))
        cells = "".join(_td(row, name, name in aggregate) for name in names)
        body.append(f'<tr class="{kind}">{_model_td(row, footnotes)}{counts}{cells}</tr>')
    table = (f'<table id="leaderboard"><thead><tr><th class="model">Model</th>{head}</tr>'
             f'</thead><tbody>{"".join(body)}</tbody></table>')
    return table, footnotes


def _overall_words(columns: Sequence[Column]) -> str:
    """What Overall averages: every column, or only the first suite's ones."""
    counted = [c for c in columns if c.in_overall]
    if len(counted) == len(columns):
        return f"the unweighted mean of all {len(columns)} sub-columns"
    return (f"the unweighted mean of the first suite's {len(counted)} sub-columns (the other"
            f" {len(columns) - len(counted)} are not in it)")


def explanation_html(columns: Sequence[Column], rows: Sequence[Row]) -> str:
    """What the columns and the intervals mean, and a warning if runs used different test sets."""
    group_text = ", ".join(f"{html.escape(group)} ({len(positions)} columns)"
                           for group, positions in groups(columns).items())
    parts = [
        f"<p>Scores are accuracies x100. The first {len(columns)} columns are the suite's "
        f"sub-columns; then one unweighted average per task group ({group_text}) and "
        f"<b>{OVERALL}</b>, {_overall_words(columns)}.</p>",
        "<p><b>Measured</b> rows (blue badge) are runs of this harness. Each cell shows the "
        "score, its 95% confidence interval in brackets and as a bar on a 0–100 scale (the "
        "black tick is the score); hover for the number of samples n. The interval is a "
        "bootstrap over source videos (shared by all columns of a run), never narrower than the "
        "independent-samples normal interval. <b>Reported</b> rows (grey badge) are published "
        "numbers, without intervals; their source is in the footnotes.</p>",
        "<p><b>Answered</b> is how many of a measured run's samples in these columns got a reply;"
        " the others (<b>Errors</b>: the request failed; <b>Never answered</b>: the run stopped"
        " first) score 0 like a wrong answer, as do <b>Unparseable</b> replies. A run that did"
        " not answer enough of its samples is shaded and marked <i>incomplete</i> (its cells"
        " that count unanswered samples carry *), or <i>failed</i> when it answered none.</p>",
        *_warnings_html(rows),
    ]
    testsets = {str(row.get("testset", "")) for row in rows if is_measured(row)}
    if len(testsets) > 1:
        parts.append("<p><b>Warning:</b> the measured rows come from "
                     f"{len(testsets)} different test sets and are not directly comparable.</p>")
    return "".join(parts)


def _warnings_html(rows: Sequence[Row]) -> list[str]:
    """One warning paragraph per marked row."""
    lines = [row_warning(row) for row in rows if is_marked(row)]
    return [f'<p class="warning"><b>Warning:</b> {html.escape(line)}</p>' for line in lines
            if line is not None]


def write_html(path: str, rows: Sequence[Row], columns: Sequence[Column], title: str,
               notes: Sequence[str] = ()) -> None:
    """Write the leaderboard page: title, explanation, table, citations, notes and plots."""
    table, footnotes = table_html(rows, columns)
    cites = "".join(f'<li id="cite{n}">[{n}] {html.escape(text)}</li>'
                    for text, n in sorted(footnotes.items(), key=lambda item: item[1]))
    note_items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    plots = "".join(
        f"<h2>{html.escape(name)}</h2><img alt=\"{html.escape(name, quote=True)}\" "
        f'src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
        for name, data in render_png(rows, columns))
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{explanation_html(columns, rows)}"
            f"{table}"
            + (f'<h2>Sources</h2><ul class="cites">{cites}</ul>' if cites else "")
            + (f'<h2>Notes</h2><ul class="notes">{note_items}</ul>' if note_items else "")
            + f"{plots}</body></html>\n")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)

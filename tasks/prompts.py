"""The versioned prompt set of the VIUBench tasks (their questions live in each task file).

The wording is ours; the information it carries matches the VideoSSR paper's prompts (App. A.1):
a system instruction to answer directly, no fact that gives the answer away (no video duration),
each perturbation named as the paper names it, and examples that are possible answers. Changing
any question's wording means a new `PROMPT_SET`, recorded in every sample.
"""

from __future__ import annotations

PROMPT_SET = "viubench-prompts-2"
SYSTEM = "Look at the video and give only the answer, with no explanation."

"""Parse policies: how much of a model's reply is searched for the answer.

* `lenient` (benchmark metrics): the answer the reply states, wherever it states it. The region
  searched is the inside of the last `<answer>` tag, else the text after the last "answer:" /
  "answer is", else the whole reply (a `<think>` block never counts). Tasks prefer what the reply
  asserts over numbers in parenthetical remarks and frame references, and take the first match
  after an explicit marker, otherwise the last one (conclusions come last).
* `strict` (our training reward): the reply (without its `<think>` block) is the bare answer, or
  the answer is inside the last `<answer>...</answer>` tag pair; decorations (quotes, backticks,
  bold or italic markers, one final full stop, surrounding whitespace) are tolerated, anything
  else fails.
* `videossr` (the VideoSSR authors' published reward rules, reproduced case by case): the reply
  as it is, read by each task's own rule; see `tasks/parsing.py` and the table in docs/tasks.md.
"""

from __future__ import annotations

import re

LENIENT, STRICT, VIDEOSSR = "lenient", "strict", "videossr"
POLICIES = (LENIENT, STRICT, VIDEOSSR)

_TAG = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_LEAD = re.compile(r"(?:final\s+)?answer\s*(?:is|:)\s*", re.IGNORECASE)
_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_DECORATION = "`*_\"'“”‘’ \t\r\n"


def check_policy(policy: str) -> str:
    """`policy` itself, or ValueError naming the known policies."""
    if policy not in POLICIES:
        raise ValueError(f"unknown parse policy {policy!r}; policies: {', '.join(POLICIES)}")
    return policy


def answer_region(text: str, policy: str) -> tuple[str, bool]:
    """(the part of `text` that should hold the answer, whether an explicit marker delimits it).

    `videossr` takes the reply as it is (its rules read the whole reply). Otherwise a `<think>`
    block is dropped and the inside of the last `<answer>` tag is the region; without a tag,
    `strict` takes the whole reply and `lenient` the text after the last "answer:" / "answer is",
    else the whole reply. Only `lenient` on a reply without any marker is unmarked.
    """
    if check_policy(policy) == VIDEOSSR:
        return text or "", True
    text = _THINK.sub(" ", text or "")
    tagged = _TAG.findall(text)
    if tagged:
        return tagged[-1].strip(), True
    if policy == STRICT:
        return text.strip(), True
    leads = list(_LEAD.finditer(text))
    if leads:
        return text[leads[-1].end():].strip(), True
    return text.strip(), False


def clean_bare(text: str) -> str:
    """A bare answer without its decorations: wrapping quotes, backticks, bold or italic markers
    and whitespace, and one final full stop (inside or outside the markers)."""
    bare = text.strip(_DECORATION)
    if bare.endswith("."):
        bare = bare[:-1].strip(_DECORATION)
    return bare

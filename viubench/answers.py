"""Where the answer sits in a model's reply, under two policies.

strict (training rewards): the reply is the bare answer, or the answer is inside the last
`<answer>...</answer>` tag pair. lenient (benchmark metrics): the same, and otherwise the text
after the last "answer:" / "answer is", and otherwise the whole reply; tasks then search that
region with patterns that do not grab stray numbers such as "frame 12".
"""

from __future__ import annotations

import re

_TAG = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_LEAD = re.compile(r"(?:final\s+)?answer\s*(?:is|:)\s*", re.IGNORECASE)
_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)


def answer_region(text: str, strict: bool) -> str:
    """The part of `text` that should hold the answer under the given policy."""
    text = _THINK.sub(" ", text or "")
    tagged = _TAG.findall(text)
    if tagged:
        return tagged[-1].strip()
    if strict:
        return text.strip()
    leads = list(_LEAD.finditer(text))
    if leads:
        return text[leads[-1].end():].strip()
    return text.strip()


def clean_bare(text: str) -> str:
    """Strip wrapping quotes, backticks, bold markers and a final full stop from a bare answer."""
    return text.strip().strip("`*\"' ").rstrip(".").strip()

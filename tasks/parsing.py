"""Answer patterns shared by several task files (numbers, label lists)."""

from __future__ import annotations

import re

from viubench.answers import answer_region, clean_bare

NUMBER = r"\d+(?:\.\d+)?"
# A standalone integer: not part of a longer number or a decimal (a full stop may follow).
BEFORE_INT, AFTER_INT = r"(?<![\d.])", r"(?!\.?\d)"
_LABEL_SEP = r"\s*(?:,|;|->|→|>|\s)\s*(?:clip\s*|frame\s*|#)?"


def pick(matches: list, anchored: bool):
    """First match after an explicit answer marker, else the last one (conclusions come last)."""
    if not matches:
        return None
    return matches[0] if anchored else matches[-1]


def region(text: str, strict: bool) -> tuple[str, bool]:
    """(answer region, whether it was explicitly marked) for the given policy."""
    found = answer_region(text, strict)
    anchored = strict or found != (text or "").strip()
    return (clean_bare(found) if strict else found), anchored


def label_lists(text: str, count: int) -> list[list[int]]:
    """Every run of `count` labels written as digits, e.g. `3,1,2`, `3 1 2`, `Clip 3 > Clip 1`."""
    one = r"(?:clip\s*|frame\s*|#)?(\d+)"
    pattern = re.compile(BEFORE_INT + one + (_LABEL_SEP + r"(\d+)") * (count - 1) + AFTER_INT,
                         re.IGNORECASE)
    runs = [(match.start(), [int(group) for group in match.groups()])
            for match in pattern.finditer(text)]
    if count <= 9:
        packed = re.compile(BEFORE_INT + r"(\d{%d})" % count + AFTER_INT)
        runs += [(match.start(), [int(ch) for ch in match.group(1)])
                 for match in packed.finditer(text)]
    return [labels for _, labels in sorted(runs, key=lambda run: run[0])]

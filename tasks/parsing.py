"""Reading the answer a reply states: one parser per VIUBench answer format, under the three
parse policies of `viubench.answers`.

counts (`circles,squares,triangles`):
  lenient  - a list of exactly three counts (`3,4,2`, `3, 4, 2`, `3;4;2`, `3/4/2`, `3 4 2`,
             `3, 4 and 2`, one a line, `[3,4,2]`) or every shape's count named (`3 circles`,
             `three circles`, `circles: 3`, `circles=3`, `{"circles": 3, ...}`);
  strict   - `a,b,c` (spaces around the commas);
  videossr - exactly three digit runs in the whole reply, read in order.
interval (`start-end`, seconds):
  lenient  - `x-y` (also en/em dash, `~`, `to`, `until`; units `s`/`sec`/`seconds`),
             `from x to y`, `between x and y`, `starts at x ... ends at y`, `[x, y]`, m:ss;
  strict   - `x-y`;
  videossr - the whole stripped reply is two runs of digits and dots joined by a hyphen, both
             valid numbers, the first not above the second.
  A time too long for a float (`1` followed by 400 digits) is no answer under any policy.
order (`341562`, clip labels in chronological order, n = len(answer)):
  lenient  - n labels packed (`341562`) or joined by `,` `;` spaces `>` `->` `-` `/` `|` `and`
             `then` (`Clip 3, Clip 4, ...`, `3 > 4 > ...`, `[3, 4, ...]`), or one a line;
  strict   - the n digits, commas or spaces between them allowed;
  videossr - the stripped reply is a permutation of the answer's characters.

Lenient reads the answer region (`viubench.answers.answer_region`) and prefers what the reply
states: it first searches the region with parenthetical remarks and frame references ("frame
12", "frames 10 to 20") masked, then with frame references masked, then as written. In the first
of these that holds a match, it takes the first match after an explicit marker, otherwise the
last. A list with too many or too few numbers is not an answer (`3,4,2,0` holds no count triple).
Strict and lenient ignore a `<think>` block; videossr reads the reply exactly as it is. A digit
run beyond Python's int conversion limit (4300 digits) never parses as a count.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from viubench.answers import LENIENT, STRICT, VIDEOSSR, answer_region, check_policy, clean_bare
from viubench.task import Parsed

NUMBER = r"\d+(?:\.\d+)?"
# A standalone integer: not part of a longer number or a decimal (a full stop may follow).
BEFORE_INT, AFTER_INT = r"(?<![\d.])", r"(?!\.?\d)"
INT = BEFORE_INT + r"\d+" + AFTER_INT

Candidates = Callable[[str, bool], list[tuple[int, Any]]]   # (text, marked) -> [(position, value)]


def pick(matches: list, anchored: bool):
    """First match after an explicit answer marker, else the last one (conclusions come last)."""
    if not matches:
        return None
    return matches[0] if anchored else matches[-1]


def region(text: str, policy: str) -> tuple[str, bool]:
    """(answer region, whether it was explicitly marked) for the given policy; a strict region
    is stripped of its decorations."""
    found, marked = answer_region(text, policy)
    return (clean_bare(found) if policy == STRICT else found), marked


# -- what the reply states ---------------------------------------------------------------------

_PARENTHETICAL = re.compile(r"\([^()]*\)")
_FRAME_REFERENCE = re.compile(
    r"\bframes?\b[ \t]*(?:(?:no\.?|number|#)[ \t]*)?" + NUMBER
    + r"(?:[ \t]*(?:,|-|–|—|/|&|\bto\b|\bthrough\b|\band\b)[ \t]*(?:and[ \t]+)?(?:frames?[ \t]*)?"
    + r"#?" + NUMBER + r")*", re.IGNORECASE)


def views(text: str) -> tuple[str, str, str]:
    """The texts searched in turn: parenthetical remarks and frame references masked, frame
    references masked, the text as written (masks are single spaces)."""
    unframed = _FRAME_REFERENCE.sub(" ", text)
    return _PARENTHETICAL.sub(" ", unframed), unframed, text


def stated(text: str, marked: bool, candidates: Candidates) -> Any:
    """The value `text` states: in the first of its `views` where `candidates` finds any, the
    first one by position if the region was explicitly marked, else the last; None if none."""
    for view in views(text):
        found = sorted(candidates(view, marked), key=lambda hit: hit[0])
        if found:
            return pick([value for _, value in found], marked)
    return None


def integers(digits: list[str]) -> list[int] | None:
    """The digit strings as ints; None if one is beyond Python's int conversion limit."""
    try:
        return [int(d) for d in digits]
    except ValueError:
        return None


def label_runs(text: str, count: int, separator: str, prefix: str = "",
               packed: bool = False) -> list[tuple[int, list[int]]]:
    """(start, labels) of every maximal run of standalone integers joined by `separator` (each
    optionally preceded by `prefix`) that holds exactly `count` of them. With `packed`, a lone
    run of `count` <= 9 digits is read digit by digit (`341562`)."""
    element = f"(?:{prefix})?{INT}" if prefix else INT
    pattern = re.compile(f"{element}(?:{separator}{element})*", re.IGNORECASE)
    runs = []
    for match in pattern.finditer(text):
        digits = re.findall(r"\d+", match.group())
        if packed and len(digits) == 1 and len(digits[0]) == count <= 9:
            digits = list(digits[0])
        labels = integers(digits) if len(digits) == count else None
        if labels is not None:
            runs.append((match.start(), labels))
    return runs


def line_runs(text: str, count: int, line: re.Pattern) -> list[tuple[int, list[int]]]:
    """(start, labels) of every maximal block of consecutive lines that each fully match `line`
    (its group `label` is the label) and that holds exactly `count` lines."""
    blocks: list[tuple[int, list[str]]] = []
    offset, inside = 0, False
    for row in text.split("\n"):
        match = line.fullmatch(row)
        if match and inside:
            blocks[-1][1].append(match.group("label"))
        elif match:
            blocks.append((offset, [match.group("label")]))
        inside = match is not None
        offset += len(row) + 1
    return [(start, labels) for start, digits in blocks
            if len(digits) == count and (labels := integers(digits)) is not None]


# -- counts: circles, squares, triangles --------------------------------------------------------

SHAPES = ("circle", "square", "triangle")
NUMBER_WORDS = {word: value for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    " fifteen sixteen seventeen eighteen nineteen twenty".split())} | {"no": 0}
_COUNT = rf"(?:{INT}|\b(?:{'|'.join(NUMBER_WORDS)})\b)"
_COUNT_SEPARATOR = r"[ \t]*(?:[,;/，；、][ \t]*(?:\n[ \t]*)?(?:and[ \t]+)?|and[ \t]+)?"
_COUNT_LINE = re.compile(r"[ \t]*(?:[-*•][ \t]*)?(?P<label>\d+)[ \t]*(?:[.,;][ \t]*)?")
_MARKS = r"[\s\"'`*]*"
_SHAPE = r"(circle|square|triangle)s?"
_NAMED = re.compile(
    rf"\b{_SHAPE}(?:[ \t]*(?:count|number))?"
    rf"(?:{_MARKS}[:=]{_MARKS}({_COUNT})|[ \t]+({INT}))"           # circles: 3, circles 3
    rf"|({_COUNT})[ \t]+(?:[a-z]+[ \t]+)?{_SHAPE}\b",              # 3 circles, 3 red circles
    re.IGNORECASE)
_STRICT_COUNTS = re.compile(r"(\d+)\s*,\s*(\d+)\s*,\s*(\d+)")


def counts(text: str, policy: str = LENIENT) -> Parsed:
    """[circles, squares, triangles] the reply states, under `policy` (see the module table)."""
    if check_policy(policy) == VIDEOSSR:
        runs = integers(re.findall(r"\d+", text or ""))
        if runs is None or len(runs) != 3:
            return Parsed(error="the reply does not hold exactly three digit runs")
        return Parsed(runs)
    found, marked = region(text, policy)
    if policy == STRICT:
        match = _STRICT_COUNTS.fullmatch(found)
        value = integers(list(match.groups())) if match else None
        return Parsed(value) if value is not None else Parsed(
            error="not three comma-separated counts")
    value = stated(found, marked, _count_candidates)
    return Parsed(value) if value is not None else Parsed(
        error="no counts of circles, squares and triangles found")


def _count_candidates(text: str, marked: bool) -> list[tuple[int, list[int]]]:
    """Lists of exactly three counts, and the counts named shape by shape."""
    return (label_runs(text, 3, _COUNT_SEPARATOR) + line_runs(text, 3, _COUNT_LINE)
            + _named_counts(text, marked))


def _named_counts(text: str, marked: bool) -> list[tuple[int, list[int]]]:
    """[(start, counts)] if every shape's count is named (`3 circles`, `squares: 4`, `"triangles":
    2`), each shape's picked like any match; [] otherwise."""
    named: dict[str, list[tuple[int, int]]] = {shape: [] for shape in SHAPES}
    for match in _NAMED.finditer(text):
        shape = match.group(1) or match.group(5)
        word = match.group(2) or match.group(3) or match.group(4)
        value = [NUMBER_WORDS[word.lower()]] if word.lower() in NUMBER_WORDS else integers([word])
        if value is not None:
            named[shape.lower()].append((match.start(), value[0]))
    if not all(named.values()):
        return []
    chosen = [pick(named[shape], marked) for shape in SHAPES]
    return [(min(start for start, _ in chosen), [value for _, value in chosen])]


# -- interval: start and end in seconds ---------------------------------------------------------

_TIME = r"(?<![\d.:])(?:\d+(?::\d{1,2}){1,2}(?:\.\d+)?|\d+(?:\.\d+)?)(?![\d:]|\.\d)"
_UNIT = r"(?:\s*(?:s|secs?|seconds?)\b)?"
_TO = r"\s*(?:-|–|—|~|→|->|\bto\b|\buntil\b|\btill\b|\bthrough\b)\s*"
_LEAD_IN = (r"[\"'*\s]*(?:time[\"'*\s]*)?(?:(?:[:=]|\bat\b|\bis\b|\bof\b|\bfrom\b)\s*)?"
            r"(?:(?:around|about|approximately|roughly|~)\s*)?")
_INTERVAL = re.compile("|".join([
    rf"\b(?:start|begin)\w*{_LEAD_IN}({_TIME}){_UNIT}\D{{0,80}}?\b(?:end|finish|stop)\w*"
    rf"{_LEAD_IN}({_TIME})",
    rf"\bbetween\s+({_TIME}){_UNIT}\s*\band\s+({_TIME})",
    rf"[\[(]\s*({_TIME}){_UNIT}\s*,\s*({_TIME}){_UNIT}\s*[\])]",
    rf"({_TIME}){_UNIT}{_TO}({_TIME})",
]), re.IGNORECASE)
_STRICT_INTERVAL = re.compile(rf"({NUMBER})\s*-\s*({NUMBER})")
_VIDEOSSR_INTERVAL = re.compile(r"\s*([\d.]+)\s*-\s*([\d.]+)\s*")


def interval(text: str, policy: str = LENIENT) -> Parsed:
    """(start_s, end_s) the reply states, under `policy` (see the module table); an interval
    that ends before it starts is an error (videossr: start > end)."""
    if check_policy(policy) == VIDEOSSR:
        return _videossr_interval(text)
    found, marked = region(text, policy)
    if policy == STRICT:
        match = _STRICT_INTERVAL.fullmatch(found)
        span = (float(match.group(1)), float(match.group(2))) if match else None
    else:
        span = stated(found, marked, _interval_candidates)
    if span is None:
        return Parsed(error="no start-end interval found")
    return _checked_span(*span)


def _checked_span(start: float, end: float) -> Parsed:
    """(start, end) if both are finite and start <= end, else why not. A time too long for a
    float (hundreds of digits) reads as infinite: no answer, and no `Infinity` in the scores."""
    if not (math.isfinite(start) and math.isfinite(end)):
        return Parsed(error="a time is too large to be a number")
    if end < start:
        return Parsed(error=f"interval ends before it starts ({start}-{end})")
    return Parsed((start, end))


def _interval_candidates(text: str, marked: bool) -> list[tuple[int, tuple[float, float]]]:
    """Every interval notation of the module table, by position."""
    found = []
    for match in _INTERVAL.finditer(text):
        start, end = (group for group in match.groups() if group is not None)
        found.append((match.start(), (seconds(start), seconds(end))))
    return found


def seconds(stamp: str) -> float:
    """Seconds of `12.5`, `0:02.3` (m:ss) or `1:00:05` (h:mm:ss)."""
    total = 0.0
    for part in stamp.split(":"):
        total = total * 60 + float(part)
    return total


def _videossr_interval(text: str) -> Parsed:
    """The authors' rule: the whole stripped reply is two runs of digits and dots joined by a
    hyphen, each a valid number, the first not above the second."""
    match = _VIDEOSSR_INTERVAL.fullmatch((text or "").strip())
    if match is None:
        return Parsed(error="the reply is not start-end")
    try:
        start, end = float(match.group(1)), float(match.group(2))
    except ValueError:
        return Parsed(error="start or end is not a number")
    return _checked_span(start, end)


# -- order: clip labels -------------------------------------------------------------------------

_CLIP = r"clips?[ \t]*|#[ \t]*"
_ORDER_SEPARATOR = (r"[ \t]*(?:(?:[,;，；、]|->|=>|→|⇒|>|-|–|—|/|\|)[ \t]*(?:\n[ \t]*)?"
                    r"(?:(?:and|then)[ \t]+)?|(?:and|then)[ \t]+)?")
_STRICT_ORDER = (r"\d\d{%d}", r"\d(?:\s*,\s*\d){%d}", r"\d(?:\s+\d){%d}")
_ORDER_LINE = re.compile(r"[ \t]*(?:[-*•][ \t]*|\d+[.)][ \t]+)?(?:clip[ \t]*|#[ \t]*)?"
                         r"(?P<label>\d+)[ \t]*(?:[.,;][ \t]*)?", re.IGNORECASE)


def order(text: str, count: int, policy: str = LENIENT) -> Parsed:
    """The `count` clip labels the reply states, under `policy` (see the module table); for
    videossr the reply must be a permutation of the characters 1..count."""
    if check_policy(policy) == VIDEOSSR:
        reply = (text or "").strip()
        labels = "".join(str(i) for i in range(1, count + 1))
        if not reply or sorted(reply) != sorted(labels):
            return Parsed(error=f"the reply is not a permutation of {labels}")
        return Parsed([int(ch) for ch in reply])
    found, marked = region(text, policy)
    if policy == STRICT:
        if not any(re.fullmatch(one % (count - 1), found) for one in _STRICT_ORDER):
            return Parsed(error=f"not {count} clip numbers")
        return Parsed([int(ch) for ch in re.findall(r"\d", found)])
    value = stated(found, marked, lambda view, _: (
        label_runs(view, count, _ORDER_SEPARATOR, _CLIP, packed=True)
        + line_runs(view, count, _ORDER_LINE)))
    return Parsed(value) if value is not None else Parsed(
        error=f"no list of {count} clip numbers found")

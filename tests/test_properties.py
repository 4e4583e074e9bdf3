"""Property tests (hypothesis) of every task's parser, benchmark metric and training reward, under
every parse policy it uses: parsing never raises, metrics and rewards stay finite and in [0, 1],
the right answer in each policy's format scores 1 and a different answer scores below 1.
`tests/test_properties_stats.py` holds the same for the confidence intervals.

Runs are derandomized (a fixed seed, no example database), so CI sees the same examples.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from viubench.answers import LENIENT, STRICT, VIDEOSSR
from viubench.registry import load_tasks
from viubench.score import reply_outcome
from viubench.task import Parsed

TASKS = load_tasks()
BUILT_IN = ("anomaly_grounding", "object_counting", "temporal_jigsaw", "masked_prediction")
PAIRS = [(name, variant) for name in BUILT_IN for variant in TASKS[name].variants]
TIMELINE_FRAMES = 48

PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=25,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def policies(task) -> list[str]:
    """The policies a reply of `task` is parsed under when a run is scored."""
    return [LENIENT, *task.reward_policies]


# -- replies ------------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from([
    "<answer>", "</answer>", "<ANSWER>", "<think>", "</think>", "answer:", "Final answer is ",
    " ", "\n", "\t", ",", ", ", ";", "-", "–", "~", ":", ".", "(", ")", "[", "]", "#", "*", "`",
    "->", "→", " and ", " then ", " to ", "from ", "between ", "start at ", "ends at ", " s",
    "seconds", "frame ", "frames ", "Clip ", "clips ", "Candidate ", "circles", " squares",
    "triangles: ", "three", "no", "=", '"', "\u0663", "\uff13", "\u00b2", "\u2167", "٫",
    "0", "1", "2", "9", "12", "0.5", "1:02", "1:00:05", "9" * 400, "1" * 5000, "0." + "7" * 500,
])
PIECES = st.one_of(FRAGMENTS, st.text(max_size=12), st.integers(0, 10**40).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(str))
# Numbers as a reply writes them: small, huge (past float range, past int conversion), decimal.
NUMBERS = st.one_of(st.integers(0, 20).map(str), st.integers(0, 10**600).map(str),
                    st.sampled_from(["9" * 400, "1" * 5000, "1." + "9" * 400]),
                    st.decimals(0, 10**6, allow_nan=False, allow_infinity=False).map(str))
SEPARATORS = st.sampled_from([",", ", ", "-", " - ", " to ", " ", "\n", ";", " > ", ":"])
# Answer-shaped replies: a few numbers joined by separators an answer format uses.
SHAPED = st.builds(lambda numbers, separator: separator.join(numbers),
                   st.lists(NUMBERS, min_size=1, max_size=9), SEPARATORS)
REPLIES = st.one_of(st.text(max_size=200), st.lists(PIECES, max_size=24).map("".join), SHAPED)


def _no_tags(text: str) -> bool:
    lowered = text.lower()
    return not any(tag in lowered for tag in ("<answer", "</answer", "<think", "</think"))


# Prose a model may write before its marked answer or inside its think block.
PREAMBLE = st.one_of(st.text(max_size=80), st.lists(PIECES, max_size=10).map("".join)).filter(
    _no_tags)


def _fields(answer: str) -> list[str]:
    """The answer's parts: start and end, three counts, or the labels."""
    if "-" in answer:
        return answer.split("-")
    return answer.split(",") if "," in answer else list(answer)


def bare_forms(name: str, answer: str) -> list[str]:
    """The answer written as a bare reply every policy of the task must read."""
    parts = _fields(answer)
    if name == "anomaly_grounding":
        return [answer, f"{parts[0]} - {parts[1]}", f" {answer}\n"]
    if name == "temporal_jigsaw":
        return [answer, f" {answer}\n"]
    return [answer, ", ".join(parts), f" {answer}\n"]


def strict_forms(name: str, answer: str) -> list[str]:
    """Bare replies the strict policy reads: also decorated, spaced or comma-joined labels."""
    parts = _fields(answer)
    forms = [f"**{answer}**", f"`{answer}`.", f'"{answer}"', f"{answer}."]
    if name in ("temporal_jigsaw", "masked_prediction"):
        forms += [",".join(parts), " ".join(parts)]
    return bare_forms(name, answer) + forms


def lenient_forms(name: str, answer: str) -> list[str]:
    """Replies in prose that only the lenient policy reads."""
    parts = _fields(answer)
    if name == "anomaly_grounding":
        start, end = parts
        return [f"The stretch lasts from {start} to {end} seconds.", f"{start}s - {end}s",
                f"between {start} and {end} seconds", f"[{start}, {end}]",
                f"It starts at {start} s and ends at {end} s."]
    if name == "object_counting":
        circles, squares, triangles = parts
        return [f"{circles} circles, {squares} squares and {triangles} triangles",
                f"circles: {circles}\nsquares: {squares}\ntriangles: {triangles}",
                f"[{circles}, {squares}, {triangles}]", "\n".join(parts)]
    if name == "temporal_jigsaw":
        return [", ".join(f"Clip {label}" for label in parts), " > ".join(parts),
                "\n".join(f"{i}. Clip {label}" for i, label in enumerate(parts, start=1))]
    return ["Candidates " + ", ".join(parts[:-1]) + f" and {parts[-1]}",
            " -> ".join(f"#{label}" for label in parts)]


@st.composite
def right_reply(draw, name: str, answer: str, policy: str) -> str:
    """`answer` as a model following `policy`'s format could reply (strict and lenient: after
    any think block, bare or in an <answer> tag; lenient: also in prose, after a marker)."""
    if policy == VIDEOSSR:
        return draw(st.sampled_from(bare_forms(name, answer)))
    think = draw(st.sampled_from(["", "<think>{}</think>\n", "<THINK>{}</think>"]))
    think = think.format(draw(PREAMBLE)) if think else ""
    if policy == STRICT:
        body = draw(st.sampled_from(strict_forms(name, answer)))
        form = draw(st.sampled_from(["{body}", "<answer>{body}</answer>",
                                     "{prose}\n<answer>{body}</answer>"]))
        return think + form.format(body=body, prose=draw(PREAMBLE))
    body = draw(st.sampled_from(strict_forms(name, answer) + lenient_forms(name, answer)))
    marker = draw(st.sampled_from(["", "Answer: ", "The final answer is ", "<answer>"]))
    closing = "</answer>" if marker == "<answer>" else ""
    preamble = draw(PREAMBLE) + "\n" if marker else ""
    return think + preamble + marker + body + closing


# -- answers ------------------------------------------------------------------------------------

def answers(name: str, variant: str) -> st.SearchStrategy[str]:
    """True answers of the variant, drawn by the task's own random-answer generator (uniform over
    the variant's answer space) on a 48-frame timeline at a random sampling rate."""
    task = TASKS[name]

    def drawn(seed: int, fps: float) -> str:
        timeline = {"indices": list(range(TIMELINE_FRAMES)), "sample_fps": fps}
        return task.random_answer(random.Random(seed), variant, timeline)

    return st.builds(drawn, st.integers(0, 2**32), st.floats(0.05, 60.0))


def parsed_values(name: str, variant: str) -> st.SearchStrategy[Any]:
    """Every kind of value the task's parser can produce for the variant."""
    params = TASKS[name].variants[variant].params
    big = st.integers(0, 10**4000)
    if name == "anomaly_grounding":
        ends = st.floats(0, allow_infinity=True, allow_nan=False)
        return st.tuples(ends, ends).map(sorted).map(tuple)
    if name == "object_counting":
        return st.lists(big, min_size=3, max_size=3)
    labels = params.get("clips", params.get("masked"))
    return st.lists(st.one_of(st.integers(0, 2 * labels), big), min_size=labels,
                    max_size=labels)


# -- properties ---------------------------------------------------------------------------------

def assert_unit(value: float, what: str) -> None:
    assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0, (
        f"{what} = {value!r} is not a finite number in [0, 1]")


def check_outcome(outcome: dict[str, Any]) -> None:
    """Every metric and reward finite in [0, 1]; the record stays strict JSON (scores.jsonl)."""
    for metric, value in outcome["metrics"].items():
        assert_unit(value, metric)
    assert outcome["score"] == outcome["metrics"]["score"]
    for policy, value in outcome["rewards"].items():
        assert_unit(value, f"reward[{policy}]")
    json.dumps(outcome, allow_nan=False)


@pytest.mark.parametrize("name, variant", PAIRS)
@PROPERTY
@given(data=st.data())
def test_any_reply_parses_without_raising_and_scores_in_bounds(name, variant, data):
    task = TASKS[name]
    text, answer = data.draw(REPLIES, "reply"), data.draw(answers(name, variant), "answer")
    for policy in policies(task):
        parsed = task.parse(text, variant, policy)
        assert isinstance(parsed, Parsed) and parsed.ok != bool(parsed.error)
    check_outcome(reply_outcome(task, text, variant, answer))


@pytest.mark.parametrize("name, variant", PAIRS)
@PROPERTY
@given(data=st.data())
def test_any_parsed_value_scores_in_bounds(name, variant, data):
    task = TASKS[name]
    answer = data.draw(answers(name, variant), "answer")
    parsed = Parsed(data.draw(parsed_values(name, variant), "value"))
    for metric, value in task.metrics(parsed, answer).items():
        assert_unit(value, metric)
    assert_unit(task.reward(parsed, answer), "reward")
    failed = Parsed(error="unparseable")
    assert set(task.metrics(failed, answer).values()) == {0.0}
    assert task.reward(failed, answer) == 0.0


@pytest.mark.parametrize("name, variant", PAIRS)
@PROPERTY
@given(data=st.data())
def test_the_right_answer_scores_one_under_every_policy(name, variant, data):
    task = TASKS[name]
    answer = data.draw(answers(name, variant), "answer")
    for policy in policies(task):
        reply = data.draw(right_reply(name, answer, policy), f"reply[{policy}]")
        parsed = task.parse(reply, variant, policy)
        assert parsed.ok, f"{policy} cannot parse {reply!r}: {parsed.error}"
        assert task.reward(parsed, answer) == 1.0, (policy, reply, parsed.value)
        if policy == LENIENT:
            metrics = task.metrics(parsed, answer)
            assert set(metrics.values()) == {1.0}, (reply, parsed.value, metrics)
    bare = reply_outcome(task, answer, variant, answer)   # the bare answer: every policy's form
    assert bare["score"] == 1.0 and set(bare["rewards"].values()) == {1.0}, bare


@pytest.mark.parametrize("name, variant", PAIRS)
@PROPERTY
@given(data=st.data())
def test_a_different_answer_scores_below_one(name, variant, data):
    task = TASKS[name]
    answer = data.draw(answers(name, variant), "answer")
    other = data.draw(answers(name, variant).filter(lambda drawn: drawn != answer), "other")
    for policy in policies(task):
        reply = data.draw(right_reply(name, other, policy), f"reply[{policy}]")
        parsed = task.parse(reply, variant, policy)
        assert task.reward(parsed, answer) < 1.0
        if policy == LENIENT:
            assert task.metrics(parsed, answer)["score"] < 1.0


@pytest.mark.parametrize("reply", ["0-" + "9" * 400, "9" * 400 + "-" + "9" * 401,
                                   "1.5 - " + "1" * 320])
def test_a_time_past_float_range_is_no_answer(reply):
    # float() reads 400 digits as inf: such a time is refused (it scored 0 anyway), so no
    # `Infinity`, which is not JSON, reaches scores.jsonl.
    task = TASKS["anomaly_grounding"]
    for policy in policies(task):
        assert task.parse(reply, "mirror", policy).error == "a time is too large to be a number"

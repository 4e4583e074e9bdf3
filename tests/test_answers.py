"""Parse policies (lenient, strict, videossr), benchmark metrics and training rewards on literal
strings; `tests/test_reply_table.py` holds the full reply tables."""

from __future__ import annotations

import itertools
import math

import pytest

from helpers import variant_for
from viubench.answers import LENIENT, STRICT, VIDEOSSR, answer_region, check_policy, clean_bare
from viubench.registry import load_tasks
from viubench.stats import footrule_score, interval_iou

TASKS = load_tasks()
GROUNDING, COUNTING, JIGSAW = (TASKS[n] for n in
                               ("anomaly_grounding", "object_counting", "temporal_jigsaw"))
GV, CV, JV = "grayscale", "easy", "easy"     # variants to parse under (jigsaw easy: 6 clips)


@pytest.mark.parametrize("text, expected", [
    ("2.1-4.5", (2.1, 4.5)),
    ("The anomaly happens from 2.1s to 4.5s.", (2.1, 4.5)),
    ("It lasts 10 seconds. Frames 3 and 4 look odd. Answer: 1.0 - 2.5", (1.0, 2.5)),
    ("<think>maybe 0.0-1.0</think><answer>3.2-5.0</answer>", (3.2, 5.0)),
    ("between 7 and 9 seconds", (7.0, 9.0)),
])
def test_grounding_lenient(text, expected):
    assert GROUNDING.parse(text, GV).value == expected


@pytest.mark.parametrize("text", ["no idea", "at 3.5 seconds", "", "5.0-2.0"])
def test_grounding_unparseable(text):
    parsed = GROUNDING.parse(text, GV)
    assert not parsed.ok and parsed.error
    assert GROUNDING.metrics(parsed, "0.0-1.0")["score"] == 0.0


def reward(task, text: str, answer: str, policy: str = STRICT) -> float:
    return task.reward(task.parse(text, variant_for(task, answer), policy), answer)


def test_grounding_strict_needs_the_bare_format():
    assert GROUNDING.parse("2.1-4.5", GV, STRICT).value == (2.1, 4.5)
    assert GROUNDING.parse("<answer>2.1-4.5</answer>", GV, STRICT).value == (2.1, 4.5)
    assert not GROUNDING.parse("from 2.1 to 4.5", GV, STRICT).ok
    assert reward(GROUNDING, "from 2.0 to 4.0", "2.0-4.0") == 0.0
    assert reward(GROUNDING, "2.0-4.0", "2.0-4.0") == 1.0


def test_grounding_videossr_reads_the_whole_reply():
    assert reward(GROUNDING, " 2.0 - 4.0\n", "2.0-4.0", VIDEOSSR) == 1.0
    assert reward(GROUNDING, "2.-4.", "2.0-4.0", VIDEOSSR) == 1.0
    assert reward(GROUNDING, "<answer>2.0-4.0</answer>", "2.0-4.0", VIDEOSSR) == 0.0
    assert not GROUNDING.parse("4.0-2.0", GV, VIDEOSSR).ok


def test_grounding_metrics_by_hand():
    got = GROUNDING.metrics(GROUNDING.parse("1.0-3.0", GV), "2.0-4.0")
    assert got["iou"] == pytest.approx(1 / 3)
    assert (got["r@0.3"], got["r@0.5"], got["r@0.7"]) == (1.0, 0.0, 0.0)
    assert interval_iou((0, 1), (2, 3)) == 0.0
    assert reward(GROUNDING, "2.5-3.5", "2.0-4.0") == pytest.approx(0.5)


@pytest.mark.parametrize("text, expected", [
    ("3,2,1", [3, 2, 1]),
    ("Answer: 4, 0, 12", [4, 0, 12]),
    ("There are 3 circles, two squares and 1 triangle.", [3, 2, 1]),
    ("In frame 12 I saw 3 red circles; squares: 5; triangles: 6", [3, 5, 6]),
    ("<answer>1,1,1</answer>", [1, 1, 1]),
])
def test_counting_lenient(text, expected):
    assert COUNTING.parse(text, CV).value == expected


def test_counting_does_not_grab_stray_digits():
    parsed = COUNTING.parse("Shapes appear in frame 12 and frame 30 of 48.", CV)
    assert not parsed.ok
    assert COUNTING.metrics(parsed, "1,2,3")["score"] == 0.0


def test_counting_metrics_and_reward_by_hand():
    parsed = COUNTING.parse("4,2,2", "easy")
    assert COUNTING.metrics(parsed, "4,2,1")["score"] == pytest.approx(2 / 3)
    assert reward(COUNTING, "2,2,2", "4,2,1") == pytest.approx((0.5 + 1 + 0) / 3)
    assert reward(COUNTING, "2 circles, 2 squares, 2 triangles", "4,2,1") == 0.0
    assert reward(COUNTING, "2 circles, 2 squares, 2 triangles", "4,2,1", VIDEOSSR) == \
        pytest.approx(0.5)
    assert reward(COUNTING, "20,2,1", "4,2,1") == pytest.approx(2 / 3)
    assert reward(COUNTING, "<think>1</think>4,2,1", "4,2,1", VIDEOSSR) == 0.0  # 4 numbers


@pytest.mark.parametrize("text", ["341562", "3,4,1,5,6,2", "3 4 1 5 6 2",
                                  "Clip 3 -> Clip 4 -> Clip 1 -> Clip 5 -> Clip 6 -> Clip 2",
                                  "The order is: 341562.", "<answer>3, 4, 1, 5, 6, 2</answer>"])
def test_jigsaw_lenient(text):
    assert JIGSAW.parse(text, JV).value == [3, 4, 1, 5, 6, 2]


def test_jigsaw_exact_match_and_garbage():
    assert JIGSAW.metrics(JIGSAW.parse("341562", JV), "341562")["score"] == 1.0
    assert JIGSAW.metrics(JIGSAW.parse("341526", JV), "341562")["score"] == 0.0
    assert not JIGSAW.parse("I cannot tell", JV).ok
    assert not JIGSAW.parse("34156", JV, STRICT).ok


def test_jigsaw_reward_footrule():
    for policy in (STRICT, VIDEOSSR):
        assert reward(JIGSAW, "341562", "341562", policy) == 1.0
        assert reward(JIGSAW, "265143", "341562", policy) == 0.0  # reversed: floor(36/2)
        assert reward(JIGSAW, "341552", "341562", policy) == 0.0  # not a permutation
        assert reward(JIGSAW, "The order is 341562", "341562", policy) == 0.0
    assert reward(JIGSAW, "3, 4, 1, 5, 6, 2", "341562") == 1.0
    assert reward(JIGSAW, "3, 4, 1, 5, 6, 2", "341562", VIDEOSSR) == 0.0


def test_random_permutation_reward_is_about_035_for_six_clips():
    truth = list(range(1, 7))
    rewards = [footrule_score(list(p), truth) for p in itertools.permutations(truth)]
    expected = 1 - ((6 * 6 - 1) / 3) / 18  # E[footrule] = (n^2 - 1) / 3
    assert sum(rewards) / len(rewards) == pytest.approx(expected)
    assert math.isclose(expected, 0.352, abs_tol=0.001)


def test_footrule_rejects_different_items():
    with pytest.raises(ValueError):
        footrule_score([1, 2, 2], [1, 2, 3])


def test_answer_region_per_policy():
    reply = "<think>answer: 1</think>So the answer is 3,4,2 (I think)."
    assert answer_region(reply, LENIENT) == ("3,4,2 (I think).", True)
    assert answer_region("I think 3,4,2", LENIENT) == ("I think 3,4,2", False)
    assert answer_region(reply, STRICT) == ("So the answer is 3,4,2 (I think).", True)
    assert answer_region(reply, VIDEOSSR) == (reply, True)
    tagged = "<answer>1</answer> then <answer> 2 </answer>"
    assert answer_region(tagged, LENIENT) == answer_region(tagged, STRICT) == ("2", True)
    with pytest.raises(ValueError, match="unknown parse policy"):
        check_policy("loose")


@pytest.mark.parametrize("text", ["3,4,2", " 3,4,2 ", "**3,4,2**", "`3,4,2`", '"3,4,2"',
                                  "3,4,2.", "**3,4,2**.", "_3,4,2_", "“3,4,2”"])
def test_clean_bare_strips_decorations_and_one_full_stop(text):
    assert clean_bare(text) == "3,4,2"
    assert clean_bare("3,4,2..") == "3,4,2."

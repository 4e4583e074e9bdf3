"""The reply table: literal model replies for each VIUBench task, with what each parse policy
makes of them (`tasks/parsing.py`), for one fixed ground truth per task.

A row is `(reply, lenient value, strict reward, videossr reward)`: the value the benchmark
(lenient) parse reads, None where it reads nothing, and the training reward under our strict
policy and under the VideoSSR authors' rules. The README quotes these lists. The videossr column
is also checked against a restatement of the authors' three reward functions (their rules, our
wording), and the task classes must agree with the small reward helpers below.
"""

from __future__ import annotations

import itertools

import pytest

from helpers import variant_for
from viubench.answers import LENIENT, STRICT, VIDEOSSR
from viubench.registry import load_tasks
from viubench.stats import footrule_score, interval_iou
from viubench.task import Parsed
from viubench.tasks import parsing

COUNTING_TRUTH = "3,4,2"      # circles, squares, triangles
COUNTING_ROWS = [
    # well-formed and near misses
    ("3,4,2", [3, 4, 2], 1.0, 1.0),
    ("3, 4, 2", [3, 4, 2], 1.0, 1.0),
    (" 3 , 4 , 2 \n", [3, 4, 2], 1.0, 1.0),
    ("3,4,1", [3, 4, 1], 2.5 / 3, 2.5 / 3),
    ("2,4,2", [2, 4, 2], 8 / 9, 8 / 9),
    ("33,4,2", [33, 4, 2], 2 / 3, 2 / 3),
    ("6,8,4", [6, 8, 4], 0.0, 0.0),
    ("0,0,0", [0, 0, 0], 0.0, 0.0),
    ("0003,004,02", [3, 4, 2], 1.0, 1.0),
    ("٣,٤,٢", [3, 4, 2], 1.0, 1.0),                        # Arabic-Indic digits
    # decorated
    ("**3,4,2**", [3, 4, 2], 1.0, 1.0),
    ("`3,4,2`", [3, 4, 2], 1.0, 1.0),
    ('"3,4,2"', [3, 4, 2], 1.0, 1.0),
    ("3,4,2.", [3, 4, 2], 1.0, 1.0),
    ("**3, 4, 2**.", [3, 4, 2], 1.0, 1.0),
    ("<answer>3,4,2</answer>", [3, 4, 2], 1.0, 1.0),
    ("<answer> 3, 4, 1 </answer>", [3, 4, 1], 2.5 / 3, 2.5 / 3),
    ("<answer>Answer: 3,4,2</answer>", [3, 4, 2], 0.0, 1.0),
    # think blocks
    ("<think>I see 3 circles.</think><answer>3,4,2</answer>", [3, 4, 2], 1.0, 0.0),
    ("<think>Counting shapes.</think>\n3,4,2", [3, 4, 2], 1.0, 1.0),
    ("<think>circles 3, squares 4, triangles 2</think>3,4,2", [3, 4, 2], 1.0, 0.0),
    ("<think>\nLet me count.\n</think>\n<answer>3, 4, 2</answer>", [3, 4, 2], 1.0, 1.0),
    # alternative notations
    ("3;4;2", [3, 4, 2], 0.0, 1.0),
    ("3/4/2", [3, 4, 2], 0.0, 1.0),
    ("3 4 2", [3, 4, 2], 0.0, 1.0),
    ("3，4，2", [3, 4, 2], 0.0, 1.0),                       # full-width commas
    ("3, 4 and 2", [3, 4, 2], 0.0, 1.0),
    ("3\n4\n2", [3, 4, 2], 0.0, 1.0),
    ("Answer:\n3\n4\n2", [3, 4, 2], 0.0, 1.0),
    ("[3,4,2]", [3, 4, 2], 0.0, 1.0),
    ("(3, 4, 2)", [3, 4, 2], 0.0, 1.0),
    ('{"circles": 3, "squares": 4, "triangles": 2}', [3, 4, 2], 0.0, 1.0),
    ("3 circles, 4 squares and 2 triangles", [3, 4, 2], 0.0, 1.0),
    ("3 circles\n4 squares\n2 triangles", [3, 4, 2], 0.0, 1.0),
    ("circles: 3, squares: 4, triangles: 2", [3, 4, 2], 0.0, 1.0),
    ("Circles: 3\nSquares: 4\nTriangles: 2", [3, 4, 2], 0.0, 1.0),
    ("- **Circles:** 3\n- **Squares:** 4\n- **Triangles:** 2", [3, 4, 2], 0.0, 1.0),
    ("Circles=3, Squares=4, Triangles=2", [3, 4, 2], 0.0, 1.0),
    ("circles 3, squares 4, triangles 2", [3, 4, 2], 0.0, 1.0),
    ("three circles, four squares and two triangles", [3, 4, 2], 0.0, 0.0),
    ("Circles: three\nSquares: four\nTriangles: two", [3, 4, 2], 0.0, 0.0),
    ("There are 3 circles, 4 squares, and no triangles.", [3, 4, 0], 0.0, 0.0),
    ("-3,4,2", [3, 4, 2], 0.0, 1.0),
    # prose, markers and trailing numbers
    ("Answer: 3,4,2", [3, 4, 2], 0.0, 1.0),
    ("The answer is 3, 4, 2.", [3, 4, 2], 0.0, 1.0),
    ("Final answer: 3,4,1", [3, 4, 1], 0.0, 2.5 / 3),
    ("The counts are (3, 4, 2) for circles, squares and triangles.", [3, 4, 2], 0.0, 1.0),
    ("Circles: 3. Squares: 4. Triangles: 2.", [3, 4, 2], 0.0, 1.0),
    ("I counted 3 circles, 4 squares and 2 triangles, so the answer is 3,4,2.", [3, 4, 2],
     0.0, 0.0),
    ("My first guess was 2,4,2. Final answer: 3,4,2", [3, 4, 2], 0.0, 0.0),
    ("I see 2 circles... no wait, 3 circles, 4 squares and 2 triangles.", [3, 4, 2], 0.0, 0.0),
    ("Answer: 3,4,2 (seen in frames 10, 20, 30)", [3, 4, 2], 0.0, 0.0),
    ("3,4,2 (circles in frames 5, 17 and 30)", [3, 4, 2], 0.0, 0.0),
    ("3 ,4 ,2 (I think)", [3, 4, 2], 0.0, 1.0),
    ("3,4,2\n\n1. Circles appear in frames 5 and 17.", [3, 4, 2], 0.0, 0.0),
    ("The video has 48 frames. Counts: 3, 4, 2.", [3, 4, 2], 0.0, 0.0),
    ("In frame 12 I saw 3 red circles; squares: 5; triangles: 6", [3, 5, 6], 0.0, 0.0),
    ("3 circles, 4 squares, 2 triangles (9 shapes in total)", [3, 4, 2], 0.0, 0.0),
    ("3,4,2 is my answer, but 2,4,2 is also possible.", [2, 4, 2], 0.0, 0.0),
    # wrong lengths, garbage, empty
    ("3,4,2,0", None, 0.0, 0.0),
    ("3,4", None, 0.0, 0.0),
    ("3", None, 0.0, 0.0),
    ("3 circles, 4 squares", None, 0.0, 0.0),
    ("3.0, 4.0, 2.0", None, 0.0, 0.0),
    ("Shapes appear in frame 12 and frame 30 of 48.", None, 0.0, 0.0),
    ("I am not sure; maybe 3 or 4, or 2.", None, 0.0, 1.0),
    ("I cannot tell.", None, 0.0, 0.0),
    ("", None, 0.0, 0.0),
]

GROUNDING_TRUTH = "2.3-4.1"   # seconds
GROUNDING_ROWS = [
    # well-formed and near misses
    ("2.3-4.1", (2.3, 4.1), 1.0, 1.0),
    ("2.3 - 4.1", (2.3, 4.1), 1.0, 1.0),
    (" 2.3-4.1 \n", (2.3, 4.1), 1.0, 1.0),
    ("02.30-04.10", (2.3, 4.1), 1.0, 1.0),
    ("2.0-4.0", (2.0, 4.0), 1.7 / 2.1, 1.7 / 2.1),
    ("2-4", (2.0, 4.0), 1.7 / 2.1, 1.7 / 2.1),
    ("2.5-3.5", (2.5, 3.5), 1.0 / 1.8, 1.0 / 1.8),
    ("0.0-10.0", (0.0, 10.0), 0.18, 0.18),
    ("5.0-6.0", (5.0, 6.0), 0.0, 0.0),
    ("10-20", (10.0, 20.0), 0.0, 0.0),
    ("2.3-2.3", (2.3, 2.3), 0.0, 0.0),
    ("4.1-2.3", None, 0.0, 0.0),
    # decorated
    ("**2.3-4.1**", (2.3, 4.1), 1.0, 0.0),
    ("`2.3-4.1`", (2.3, 4.1), 1.0, 0.0),
    ('"2.3-4.1"', (2.3, 4.1), 1.0, 0.0),
    ("2.3-4.1.", (2.3, 4.1), 1.0, 0.0),
    ("<answer>2.3-4.1</answer>", (2.3, 4.1), 1.0, 0.0),
    ("<answer>from 2.3 to 4.1</answer>", (2.3, 4.1), 0.0, 0.0),
    # think blocks
    ("<think>It looks rotated from 2 to 4 seconds.</think>\n2.3-4.1", (2.3, 4.1), 1.0, 0.0),
    ("<think>hmm</think><answer>2.0-4.0</answer>", (2.0, 4.0), 1.7 / 2.1, 0.0),
    ("<think>It starts at 1.0 s.</think>", None, 0.0, 0.0),
    # alternative notations
    ("2.3–4.1", (2.3, 4.1), 0.0, 0.0),                      # en dash
    ("2.3—4.1", (2.3, 4.1), 0.0, 0.0),                      # em dash
    ("2.3~4.1", (2.3, 4.1), 0.0, 0.0),
    ("2.3s-4.1s", (2.3, 4.1), 0.0, 0.0),
    ("2.3-4.1s", (2.3, 4.1), 0.0, 0.0),
    ("2.3 s - 4.1 s", (2.3, 4.1), 0.0, 0.0),
    ("2.3-4.1 seconds", (2.3, 4.1), 0.0, 0.0),
    ("2.3s to 4.1s", (2.3, 4.1), 0.0, 0.0),
    ("2.3 to 4.1", (2.3, 4.1), 0.0, 0.0),
    ("2.3 until 4.1 s", (2.3, 4.1), 0.0, 0.0),
    ("from 2.3 to 4.1 seconds", (2.3, 4.1), 0.0, 0.0),
    ("between 2.3 and 4.1", (2.3, 4.1), 0.0, 0.0),
    ("The anomaly starts at 2.3 s and ends at 4.1 s.", (2.3, 4.1), 0.0, 0.0),
    ("begins at 2.3 seconds and ends at 4.1 seconds", (2.3, 4.1), 0.0, 0.0),
    ("Start: 2.3s, End: 4.1s", (2.3, 4.1), 0.0, 0.0),
    ('{"start": 2.3, "end": 4.1}', (2.3, 4.1), 0.0, 0.0),
    ("[2.3, 4.1]", (2.3, 4.1), 0.0, 0.0),
    ("(2.3, 4.1)", (2.3, 4.1), 0.0, 0.0),
    ("0:02.3-0:04.1", (2.3, 4.1), 0.0, 0.0),
    ("1:05 - 1:10", (65.0, 70.0), 0.0, 0.0),
    ("From 0:02 to 0:04", (2.0, 4.0), 0.0, 0.0),
    (".5-4.1", None, 0.0, 0.5),
    ("2.-4.", None, 0.0, 1.7 / 2.1),
    # prose, markers and trailing numbers
    ("Answer: 2.3-4.1", (2.3, 4.1), 0.0, 0.0),
    ("The answer is 2.3 - 4.1.", (2.3, 4.1), 0.0, 0.0),
    ("I think it starts around 2 s. Answer: 2.3-4.1", (2.3, 4.1), 0.0, 0.0),
    ("2.3 - 4.1 (approximately)", (2.3, 4.1), 0.0, 0.0),
    ("2.3-4.1 s (frames 11 to 20)", (2.3, 4.1), 0.0, 0.0),
    ("Answer: 2.3-4.1 (frames 11-20)", (2.3, 4.1), 0.0, 0.0),
    ("2.3-4.1 s; frames 11 to 20", (2.3, 4.1), 0.0, 0.0),
    ("Rotated frames appear between frames 11 and 20, i.e. 2.3-4.1 s.", (2.3, 4.1), 0.0, 0.0),
    ("The video lasts 10.0 seconds; the anomaly is 2.3-4.1.", (2.3, 4.1), 0.0, 0.0),
    ("2.3 - 4.1 - 5.0", (2.3, 4.1), 0.0, 0.0),
    ("2.3-4.1 or maybe 5.0-6.0", (5.0, 6.0), 0.0, 0.0),
    ("The anomaly occurs during frames 11-20.", (11.0, 20.0), 0.0, 0.0),
    # wrong forms, garbage, empty
    ("at 3.5 seconds", None, 0.0, 0.0),
    ("2.3", None, 0.0, 0.0),
    ("2.3-", None, 0.0, 0.0),
    ("-4.1", None, 0.0, 0.0),
    ("2.3.1-4.1", None, 0.0, 0.0),
    ("no anomaly", None, 0.0, 0.0),
    ("", None, 0.0, 0.0),
]

JIGSAW_TRUTH = "341562"       # the shown clip labels in chronological order
JIGSAW_ROWS = [
    # well-formed and near misses
    ("341562", [3, 4, 1, 5, 6, 2], 1.0, 1.0),
    (" 341562 \n", [3, 4, 1, 5, 6, 2], 1.0, 1.0),
    ("431562", [4, 3, 1, 5, 6, 2], 8 / 9, 8 / 9),
    ("341526", [3, 4, 1, 5, 2, 6], 8 / 9, 8 / 9),
    ("143562", [1, 4, 3, 5, 6, 2], 7 / 9, 7 / 9),
    ("123456", [1, 2, 3, 4, 5, 6], 1 / 3, 1 / 3),
    ("563412", [5, 6, 3, 4, 1, 2], 1 / 3, 1 / 3),
    ("215643", [2, 1, 5, 6, 4, 3], 1 / 9, 1 / 9),
    ("265143", [2, 6, 5, 1, 4, 3], 0.0, 0.0),
    ("341552", [3, 4, 1, 5, 5, 2], 0.0, 0.0),
    ("341567", [3, 4, 1, 5, 6, 7], 0.0, 0.0),
    ("٣٤١٥٦٢", [3, 4, 1, 5, 6, 2], 1.0, 0.0),               # Arabic-Indic digits
    # decorated
    ("**341562**", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("`341562`", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ('"341562"', [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("341562.", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("<answer>341562</answer>", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("<answer>\n341562\n</answer>", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    # think blocks
    ("<think>Clip 3 shows the start.</think>341562", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("<think>Order 1 to 6?</think>\n<answer>3,4,1,5,6,2</answer>", [3, 4, 1, 5, 6, 2],
     1.0, 0.0),
    ("<think>I would say 341562.</think>", None, 0.0, 0.0),
    # alternative notations
    ("3,4,1,5,6,2", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("3, 4, 1, 5, 6, 2", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("3, 4, 1, 5, 6, 2.", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("3 4 1 5 6 2", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("3\n4\n1\n5\n6\n2", [3, 4, 1, 5, 6, 2], 1.0, 0.0),
    ("3 > 4 > 1 > 5 > 6 > 2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("3->4->1->5->6->2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("3 → 4 → 1 → 5 → 6 → 2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("3-4-1-5-6-2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("3;4;1;5;6;2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("3/4/1/5/6/2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("3|4|1|5|6|2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("#3 #4 #1 #5 #6 #2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("[3, 4, 1, 5, 6, 2]", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("Clip 3, Clip 4, Clip 1, Clip 5, Clip 6, Clip 2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("Clip3,Clip4,Clip1,Clip5,Clip6,Clip2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("Clip 3 -> Clip 4 -> Clip 1 -> Clip 5 -> Clip 6 -> Clip 2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("clips 3, 4, 1, 5, 6 and 2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("First clip 3, then clip 4, then clip 1, then clip 5, then clip 6, then clip 2.",
     [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("1. Clip 3\n2. Clip 4\n3. Clip 1\n4. Clip 5\n5. Clip 6\n6. Clip 2", [3, 4, 1, 5, 6, 2],
     0.0, 0.0),
    # prose, markers and trailing numbers
    ("Answer: 341562", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("The correct order is 341562.", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("The order is: 3, 4, 1, 5, 6, 2", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("Order: [3,4,1,5,6,2]", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("341562. (Clips 1, 2, 3, 4, 5, 6 were shown)", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("3 4 1 5 6 2 (clips 1-6 in the order shown)", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("The clips shown are 1,2,3,4,5,6; the order is 341562.", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("The order is 341562 because clip 3 starts the story.", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("Answer: 341562. Clip 1 and clip 2 were hard.", [3, 4, 1, 5, 6, 2], 0.0, 0.0),
    ("3 4 1 5 6 2 or perhaps 4 3 1 5 6 2", [4, 3, 1, 5, 6, 2], 0.0, 0.0),
    # wrong lengths, garbage, empty
    ("34156", None, 0.0, 0.0),
    ("3415627", None, 0.0, 0.0),
    ("341562341562", None, 0.0, 0.0),
    ("3,4,1,5,6", None, 0.0, 0.0),
    ("3,4,1,5,6,2,7", None, 0.0, 0.0),
    ("3 4 1 5 6", None, 0.0, 0.0),
    ("34 15 62", None, 0.0, 0.0),
    ("Clip 3", None, 0.0, 0.0),
    ("The first clip is Clip 3 (frames 0-7).", None, 0.0, 0.0),
    ("0", None, 0.0, 0.0),
    ("abcdef", None, 0.0, 0.0),
    ("I cannot tell.", None, 0.0, 0.0),
    ("", None, 0.0, 0.0),
]


# -- our reward helpers: the task's reward function applied to a parse ---------------------------

def count_reward(parsed: Parsed, truth: str) -> float:
    """Mean over shapes of max(0, 1 - |p - g| / g), 0 for a failed parse (g = 0: 1 only for
    p = 0). Written without dividing a huge count (|p - g| >= g already means 0)."""
    if not parsed.ok:
        return 0.0
    gold = [int(x) for x in truth.split(",")]
    closeness = [1.0 if p == g else 0.0 if abs(p - g) >= g else 1 - abs(p - g) / g
                 for p, g in zip(parsed.value, gold)]
    return sum(closeness) / len(gold)


def iou_reward(parsed: Parsed, truth: str) -> float:
    """Temporal IoU with the true interval, 0 for a failed parse."""
    start, end = truth.split("-")
    return interval_iou(parsed.value, (float(start), float(end))) if parsed.ok else 0.0


def order_reward(parsed: Parsed, truth: str) -> float:
    """1 - footrule / floor(n^2 / 2) for a permutation of the true labels, else 0."""
    gold = [int(ch) for ch in truth]
    if not parsed.ok or sorted(parsed.value) != sorted(gold):
        return 0.0
    return footrule_score(parsed.value, gold)


# -- the authors' reward rules, restated (verl/verl/utils/reward_score/{counting,grounding,jigsaw})

def authors_counting(reply: str, truth: str) -> float:
    """Every maximal run of digits anywhere in the reply is a number; unless there are exactly
    as many as true counts the reward is 0. Otherwise each pair scores 1 when equal, else
    max(0, 1 - |p - g| / (|g| + 1e-9)), and the reward is their mean."""
    gold = [float(x) for x in truth.split(",")]
    numbers, digits = [], ""
    for ch in reply + " ":
        if ch.isdecimal():
            digits += ch
        elif digits:
            numbers.append(float(digits))
            digits = ""
    if len(numbers) != len(gold):
        return 0.0
    return sum(1.0 if p == g else max(0.0, 1 - abs(p - g) / (abs(g) + 1e-9))
               for p, g in zip(numbers, gold)) / len(gold)


def _authors_interval(text: str) -> tuple[float, float] | None:
    """After trimming whitespace, exactly one hyphen with a non-empty run of digits and dots on
    either side (whitespace around the hyphen allowed); both runs must convert to numbers and
    the first must not exceed the second."""
    sides = text.strip().split("-")
    if len(sides) != 2:
        return None
    parts = [side.strip() for side in sides]
    if not all(part and all(ch.isdecimal() or ch == "." for ch in part) for part in parts):
        return None
    try:
        start, end = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return (start, end) if start <= end else None


def authors_grounding(reply: str, truth: str) -> float:
    """IoU of the two intervals, with the union taken as the sum of both lengths minus the
    overlap; a union below 1e-9 gives 1 if they overlap at all, else 0."""
    pred, gold = _authors_interval(reply), _authors_interval(truth)
    if pred is None or gold is None:
        return 0.0
    overlap = max(0.0, min(pred[1], gold[1]) - max(pred[0], gold[0]))
    union = (pred[1] - pred[0]) + (gold[1] - gold[0]) - overlap
    if union < 1e-9:
        return 1.0 if overlap > 0 else 0.0
    return overlap / union


def authors_jigsaw(reply: str, truth: str) -> float:
    """The trimmed reply must hold exactly the characters of the trimmed truth, in any order;
    then the distance is the sum, over the truth's characters, of how far the first occurrence
    of each moved, and the reward is 1 - distance / floor(n^2 / 2)."""
    answer, gold = reply.strip(), truth.strip()
    if not reply or sorted(answer) != sorted(gold):
        return 0.0
    most = len(gold) * len(gold) // 2
    if most == 0:
        return 1.0
    distance = sum(abs(answer.find(ch) - gold.find(ch)) for ch in gold)
    return 1.0 - distance / most


def _count_parse(reply: str, truth: str, policy: str) -> Parsed:
    return parsing.counts(reply, policy)


def _order_parse(reply: str, truth: str, policy: str) -> Parsed:
    return parsing.order(reply, len(truth), policy)


def _interval_parse(reply: str, truth: str, policy: str) -> Parsed:
    return parsing.interval(reply, policy)


# task name -> (truth, rows, parse, our reward helper, authors' reward)
TABLES = {
    "object_counting": (COUNTING_TRUTH, COUNTING_ROWS, _count_parse, count_reward,
                        authors_counting),
    "anomaly_grounding": (GROUNDING_TRUTH, GROUNDING_ROWS, _interval_parse, iou_reward,
                          authors_grounding),
    "temporal_jigsaw": (JIGSAW_TRUTH, JIGSAW_ROWS, _order_parse, order_reward, authors_jigsaw),
}
CASES = [(name, row) for name, table in TABLES.items() for row in table[1]]
ALL_REPLIES = sorted({row[0] for _, row in CASES})


def _value_matches(parsed: Parsed, expected) -> bool:
    if expected is None:
        return not parsed.ok and bool(parsed.error)
    return parsed.ok and list(parsed.value) == pytest.approx(list(expected))


@pytest.mark.parametrize("name", TABLES)
def test_every_table_has_60_distinct_replies_and_every_kind_of_row(name):
    _, rows, _, _, _ = TABLES[name]
    replies = [row[0] for row in rows]
    assert len(rows) >= 60 and len(set(replies)) == len(replies)
    assert "" in replies and any("<think>" in r for r in replies)
    assert any(row[1] is None for row in rows) and any(row[1] is not None for row in rows)
    assert {row[2] for row in rows} > {0.0, 1.0} and {row[3] for row in rows} > {0.0, 1.0}


@pytest.mark.parametrize("name, row", CASES, ids=[f"{n}:{r[0]!r}" for n, r in CASES])
def test_row(name, row):
    truth, _, parse, reward, _ = TABLES[name]
    reply, lenient, strict, videossr = row
    assert _value_matches(parse(reply, truth, LENIENT), lenient)
    assert reward(parse(reply, truth, STRICT), truth) == pytest.approx(strict)
    assert reward(parse(reply, truth, VIDEOSSR), truth) == pytest.approx(videossr)


@pytest.mark.parametrize("name", TABLES)
def test_task_classes_agree_with_the_table(name):
    task = load_tasks()[name]
    truth, rows, parse, reward, _ = TABLES[name]
    assert set(task.reward_policies) == {STRICT, VIDEOSSR}
    for reply, lenient, _, _ in rows:
        assert _value_matches(task.parse(reply, variant_for(task, truth)), lenient), reply
        for policy in task.reward_policies:
            ours = task.reward(task.parse(reply, variant_for(task, truth), policy), truth)
            assert ours == pytest.approx(reward(parse(reply, truth, policy), truth)), (reply,
                                                                                     policy)


@pytest.mark.parametrize("name", TABLES)
def test_videossr_column_is_the_authors_rule(name):
    truth, rows, parse, reward, authors = TABLES[name]
    for reply, _, _, videossr in rows:
        assert authors(reply, truth) == pytest.approx(videossr, abs=1e-8), reply
    # every reply of every table, read by this task's rule
    for reply in ALL_REPLIES:
        ours = reward(parse(reply, truth, VIDEOSSR), truth)
        assert ours == pytest.approx(authors(reply, truth), abs=1e-8), reply


def test_footrule_equals_the_authors_find_distance_on_every_permutation():
    for n in range(1, 9):
        truth = "".join(str(i) for i in range(1, n + 1))
        gold = [int(ch) for ch in truth]
        for perm in itertools.permutations(truth):
            reply = "".join(perm)
            assert footrule_score([int(ch) for ch in reply], gold) == pytest.approx(
                authors_jigsaw(reply, truth), abs=1e-12)


def test_interval_iou_differs_from_the_epsilon_rule_only_for_identical_points():
    """The authors' union below 1e-9 can only happen for two zero-length intervals; they score
    0 even when both are the same point, interval_iou scores that 1."""
    stamps = [0.0, 1.0, 2.3, 4.1, 5.0]
    spans = [(a, b) for a in stamps for b in stamps if a <= b]
    for pred, gold in itertools.product(spans, spans):
        ours = interval_iou(pred, gold)
        theirs = authors_grounding(f"{pred[0]}-{pred[1]}", f"{gold[0]}-{gold[1]}")
        if pred == gold and pred[0] == pred[1]:
            assert (ours, theirs) == (1.0, 0.0)
        else:
            assert ours == pytest.approx(theirs, abs=1e-12), (pred, gold)


def test_count_reward_differs_from_the_authors_epsilon_by_at_most_1e_9():
    """Their 1e-9 added to |g| changes a score by at most 1e-9 / |g| (up to rounding), and
    never an exact count's 1."""
    for g, p in itertools.product(range(0, 17), range(0, 40)):
        ours = count_reward(Parsed([p, p, p]), f"{g},{g},{g}")
        theirs = authors_counting(f"{p},{p},{p}", f"{g},{g},{g}")
        assert abs(ours - theirs) < 1.001e-9 and (ours == theirs or p != g)


def test_a_digit_run_beyond_the_int_limit_never_parses():
    """The authors' float() reads such a run as infinity (that shape scores 0, the others
    count); we refuse the reply. A 2048-token reply cannot hold one."""
    reply = "3,4," + "2" * 5000
    for policy in (LENIENT, STRICT, VIDEOSSR):
        assert not parsing.counts(reply, policy).ok
    assert authors_counting(reply, COUNTING_TRUTH) == pytest.approx(2 / 3)


def test_a_count_too_large_for_a_float_scores_0_for_its_shape():
    """Up to the int limit a count parses; the reward must not divide it into a float (Python
    raises OverflowError past about 1e308): the authors' float() makes it infinity, scoring 0."""
    reply = "3,4," + "9" * 400
    counting = load_tasks()["object_counting"]
    for policy in (STRICT, VIDEOSSR):
        parsed = parsing.counts(reply, policy)
        assert parsed.value == [3, 4, int("9" * 400)]
        assert count_reward(parsed, COUNTING_TRUTH) == pytest.approx(2 / 3)
        assert counting.reward(parsed, COUNTING_TRUTH) == pytest.approx(2 / 3)
    assert authors_counting(reply, COUNTING_TRUTH) == pytest.approx(2 / 3)


@pytest.mark.parametrize("call", [lambda p: parsing.counts("3,4,2", p),
                                  lambda p: parsing.interval("2.3-4.1", p),
                                  lambda p: parsing.order("341562", JIGSAW_TRUTH, p)])
def test_unknown_policy_is_an_error(call):
    with pytest.raises(ValueError, match="unknown parse policy"):
        call("loose")

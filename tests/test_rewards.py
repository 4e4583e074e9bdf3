"""`viubench.rewards`: the scorers behind TRL's, verl's and EasyR1's reward signatures, called
with the keyword names and shapes those trainers use (TRL 1.16 GRPOTrainer, verl 0.8-0.10
`compute_score`, EasyR1's batch and sequential reward functions)."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viubench.rewards import (compute_score, data_source, easyr1_compute_score,
                              easyr1_compute_score_one, easyr1_ground_truth, trl_reward)

# (task, variant, answer, reply, policy, reward) computed by hand from docs/tasks.md's rules
TABLE = [
    ("object_counting", "easy", "3,1,2", "<answer>3,1,2</answer>", None, 1.0),
    # mean of max(0, 1 - |p - g| / g): (1 + 1 + 1/2) / 3
    ("object_counting", "easy", "3,1,2", "<answer>3,1,1</answer>", None, 2.5 / 3),
    ("object_counting", "hard", "3,4,2", "3 circles, 4 squares and 2 triangles", None, 0.0),
    ("object_counting", "hard", "3,4,2", "3 circles, 4 squares and 2 triangles", "videossr",
     1.0),
    # IoU of 15-25 with 10-20: 5 / 15
    ("anomaly_grounding", "mirror", "10.0-20.0", "<answer>15-25</answer>", None, 1 / 3),
    ("anomaly_grounding", "mirror", "2.3-4.1", "**2.3-4.1**", None, 1.0),
    ("anomaly_grounding", "mirror", "2.3-4.1", "**2.3-4.1**", "videossr", 0.0),
    # 1 - footrule / floor(n^2 / 2): 1 - 2 / 18
    ("temporal_jigsaw", "easy", "123456", "<answer>123465</answer>", None, 1 - 2 / 18),
    ("temporal_jigsaw", "easy", "341562", "341562. (Clips 1, 2, 3, 4, 5, 6 were shown)", None,
     0.0),
    ("temporal_jigsaw", "easy", "123456", "no idea", None, 0.0),
]


def _log():
    logged: list[tuple[str, float]] = []
    return logged, lambda name, value: logged.append((name, value))


@pytest.mark.parametrize("task, variant, answer, reply, policy, expected", TABLE)
def test_every_signature_gives_the_hand_computed_reward(task, variant, answer, reply, policy,
                                                        expected):
    policy_column = {"reward_policy": [policy, policy]} if policy else {}
    logged, log_metric = _log()
    # TRL: keyword call, columns repeated per generation, plain and conversational completions
    trl = trl_reward(prompts=[[{"role": "user", "content": "q"}]] * 2,
                     completions=[reply, [{"role": "assistant", "content": reply}]],
                     completion_ids=[[1, 2], [1, 2]], task=[task, task],
                     variant=[variant, variant], answer=[answer, answer], trainer_state=None,
                     log_metric=log_metric, log_extra=lambda column, values: None,
                     **policy_column)
    assert trl == pytest.approx([expected, expected])
    assert logged == [(f"rewards/viubench/{task}", pytest.approx(expected))]
    extra = {"reward_policy": policy} if policy else {}
    verl = compute_score(data_source=data_source(task, variant), solution_str=reply,
                         ground_truth=answer, extra_info=extra, step=3)
    assert verl == pytest.approx(expected)
    truth = easyr1_ground_truth(task, variant, answer, policy)
    inputs = [{"response": reply, "response_length": len(reply), "ground_truth": truth}]
    assert easyr1_compute_score(inputs) == [{"overall": pytest.approx(expected)}]
    assert easyr1_compute_score_one(inputs[0]) == {"overall": pytest.approx(expected)}


def _load_by_path(path: str, name: str):
    """A module loaded from its file, outside any package, as verl's `load_module` and EasyR1's
    `AutoRewardManager` load a reward file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verl_calls_compute_score_as_its_naive_and_batch_managers_do():
    """verl 0.8-0.10: the naive manager calls `compute_score(data_source=, solution_str=,
    ground_truth=, extra_info=)` per response, after adding `num_turns` and
    `rollout_reward_scores` to extra_info; the batch manager calls the plural keywords once."""
    import viubench.rewards

    module = _load_by_path(viubench.rewards.__file__, "custom_module_1234")
    extra = {"index": 0, "num_turns": None, "rollout_reward_scores": {}}
    assert module.compute_score(data_source="viubench/temporal_jigsaw/easy",
                                solution_str="123465", ground_truth="123456",
                                extra_info=extra) == pytest.approx(1 - 2 / 18)
    batch = module.compute_score_batch(
        data_sources=["viubench/temporal_jigsaw/easy", "viubench/object_counting/easy"],
        solution_strs=["123456", "3 circles, 1 square, 2 triangles"],
        ground_truths=["123456", "3,1,2"],
        extra_infos=[{"rollout_reward_scores": {}},
                     {"reward_policy": "videossr", "rollout_reward_scores": {}}])
    assert batch == [1.0, 1.0]


@pytest.mark.parametrize("file, expected_type", [("rewards.py", "batch"),
                                                 ("rewards_sequential.py", "sequential")])
def test_easyr1_loads_the_file_and_calls_it_in_the_style_it_declares(file, expected_type):
    """EasyR1 loads `path:function` as module `custom_reward_fn`, reads the module's
    REWARD_TYPE (default batch), and calls a batch function with a list of
    {response, response_length, ground_truth} dicts, a sequential one with one dict."""
    import viubench.rewards

    path = os.path.join(os.path.dirname(viubench.rewards.__file__), file)
    module = _load_by_path(path, "custom_reward_fn")
    reward_type = getattr(module, "REWARD_TYPE", "batch")
    assert reward_type == expected_type
    function = getattr(module, "easyr1_compute_score" if file == "rewards.py"
                       else "compute_score")
    truth = easyr1_ground_truth("temporal_jigsaw", "easy", "123456")
    inputs = [{"response": text, "response_length": len(text), "ground_truth": truth}
              for text in ("123456", "nonsense")]
    if reward_type == "batch":
        scores = function(inputs)
    else:
        scores = [function(item) for item in inputs]
    assert [score["overall"] for score in scores] == [1.0, 0.0]


def test_text_parts_of_a_multimodal_reply_are_read():
    reply = [{"role": "assistant", "content": [{"type": "text", "text": "<answer>12"},
                                               {"type": "text", "text": "3456</answer>"}]}]
    assert trl_reward(completions=[reply], task=["temporal_jigsaw"], variant=["easy"],
                      answer=["123456"]) == [1.0]


def test_configuration_errors_are_one_clear_error():
    with pytest.raises(ValueError, match="no task 'nope'"):
        compute_score("viubench/nope/easy", "1", "1")
    with pytest.raises(ValueError, match="no variant 'huge'"):
        compute_score("viubench/temporal_jigsaw/huge", "1", "1")
    with pytest.raises(ValueError, match="no reward policy 'lenient'"):
        compute_score("viubench/temporal_jigsaw/easy", "1", "1",
                      {"reward_policy": "lenient"})
    with pytest.raises(ValueError, match="not viubench/TASK/VARIANT"):
        compute_score("gsm8k", "1", "1")
    with pytest.raises(ValueError, match="needs a column 'variant'"):
        trl_reward(completions=["1"], task=["temporal_jigsaw"], answer=["123456"])
    with pytest.raises(ValueError, match="'3,x' is not an answer of object_counting:easy"):
        compute_score("viubench/object_counting/easy", "3,1,2", "3,x")
    with pytest.raises(ValueError, match="ground_truth is not viubench's JSON"):
        easyr1_compute_score([{"response": "1", "ground_truth": "123456"}])


CASES = [("object_counting", "easy", "3,1,2"), ("anomaly_grounding", "shuffle", "2.3-4.1"),
         ("temporal_jigsaw", "hard", "34156287"), ("masked_prediction", "mvp-easy", "3,7,1,5")]


@settings(deadline=None, max_examples=60, derandomize=True, database=None)
@given(case=st.sampled_from(CASES), reply=st.one_of(
    st.text(), st.none(), st.integers(), st.lists(st.dictionaries(st.text(), st.text()))))
def test_any_reply_gives_a_bounded_deterministic_reward(case, reply):
    task, variant, answer = case
    first = trl_reward(completions=[reply], task=[task], variant=[variant], answer=[answer])
    again = trl_reward(completions=[reply], task=[task], variant=[variant], answer=[answer])
    assert first == again and math.isfinite(first[0]) and 0.0 <= first[0] <= 1.0
    assert compute_score(data_source(task, variant), reply, answer) == first[0] or \
        not isinstance(reply, str)

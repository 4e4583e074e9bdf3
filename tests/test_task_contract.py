"""Tasks are checked when loaded: an old or incomplete task is refused in one line naming it."""

from __future__ import annotations

import pytest

from viubench.registry import load_tasks

import user_task


class OldStyle(user_task.PlaybackDirection):
    """Written to the old contract: parse(text, answer, strict)."""

    name = "old_style"

    def parse(self, text, answer, strict=False):
        return super().parse(text, answer)


class GivenTheAnswer(user_task.PlaybackDirection):
    """Written to the contract before parsing stopped seeing the true answer."""

    name = "given_the_answer"

    def parse(self, text, answer, policy="lenient"):
        return super().parse(text, "default", policy)


class NoPolicies(user_task.PlaybackDirection):
    name = "no_policies"
    reward_policies = ()


class UnknownPolicy(user_task.PlaybackDirection):
    name = "unknown_policy"
    reward_policies = ("strict", "fuzzy")


class Incomplete:
    name = "incomplete"
    version = "1"


@pytest.mark.parametrize("cls, message", [
    (OldStyle, "must take a `policy`"),
    (GivenTheAnswer, "never given the true answer"),
    (NoPolicies, "reward_policies must be a non-empty subset"),
    (UnknownPolicy, r"got \['strict', 'fuzzy'\]"),
    (Incomplete, "lacks protocol, variants, suites, reward_policies, draw, render, parse"),
])
def test_bad_tasks_are_refused_with_one_line_naming_them(cls, message, monkeypatch):
    monkeypatch.setattr(user_task, "Candidate", cls, raising=False)
    with pytest.raises(ValueError, match=message) as refused:
        load_tasks(["user_task:Candidate"])
    assert "user_task:Candidate" in str(refused.value) and "\n" not in str(refused.value)


def test_builtin_and_user_tasks_meet_the_contract():
    tasks = load_tasks(["user_task:TASK"])
    assert {"anomaly_grounding", "object_counting", "temporal_jigsaw", "masked_prediction",
            "playback_direction"} <= set(tasks)
    assert tasks["object_counting"].reward_policies == ("strict", "videossr")
    assert tasks["masked_prediction"].reward_policies == ("strict",)

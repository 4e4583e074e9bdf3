"""Training rewards: the benchmark's own scorers, called the way RL trainers call a reward.

One core, `RewardCore.reward(task, variant, answer, text, policy)`: the reply parsed under a
reward policy of its task (`strict` unless asked otherwise; `videossr` where the task has it)
and scored against the answer; a float in [0, 1], the same for the same input, never an
exception for any reply text (a reply that does not parse earns 0). A task, variant or policy
that does not exist is a configuration error and raises ValueError at once.

Three signatures around it, as the trainers call them:

* TRL (`GRPOTrainer(reward_funcs=[trl_reward])`, `trl grpo --reward_funcs
  viubench.rewards.trl_reward`): `trl_reward(prompts=, completions=, completion_ids=,
  **columns)` with dataset columns `task`, `variant`, `answer` (and optionally
  `reward_policy`); plain or conversational completions; one float per completion; the mean
  reward per task is logged through TRL's `log_metric` when it is passed.
* verl (`custom_reward_function.path = pkg://viubench.rewards` or this file's path,
  `name = compute_score`): `compute_score(data_source, solution_str, ground_truth,
  extra_info=None, **kwargs)` with `data_source = "viubench/TASK/VARIANT"` and `ground_truth`
  the answer; `extra_info` may name a `reward_policy`. verl's batch reward manager
  (`reward_model.reward_manager=batch`) calls `compute_score_batch(data_sources=,
  solution_strs=, ground_truths=, extra_infos=)` instead.
* EasyR1 (`worker.reward.reward_function=<this file>:easyr1_compute_score`): a batch of
  `{"response", "response_length", "ground_truth"}` dicts, the task, variant, answer and policy
  travelling in `ground_truth` as the JSON text `easyr1_ground_truth` makes; returns one
  `{"overall": reward}` per input. EasyR1 reads the call style from the file's `REWARD_TYPE`
  (`batch` here); `viubench/rewards_sequential.py` is the same reward as a `sequential` file
  (one dict in, one dict out, `easyr1_compute_score_one`).

Tasks are the built-ins and installed plug-ins; a user task is added with
`RewardCore(load_tasks(["my_task:TASK"]))` and that core's methods.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from typing import Any, Callable, Mapping, Sequence

# Absolute imports: verl and EasyR1 load this file by its path, outside the package.
from viubench.registry import load_tasks
from viubench.task import Task

DATA_SOURCE_PREFIX = "viubench/"
REWARD_NAME = "viubench"    # EasyR1 prints it
REWARD_TYPE = "batch"       # EasyR1 calls `easyr1_compute_score` with a list of inputs


class RewardCore:
    """Rewards of replies to samples of `tasks` (name -> Task)."""

    def __init__(self, tasks: Mapping[str, Task]) -> None:
        self.tasks = dict(tasks)

    def reward(self, task: str, variant: str, answer: str, text: Any,
               policy: str | None = None) -> float:
        found = self._task(task, variant)
        chosen = policy or found.reward_policies[0]
        if chosen not in found.reward_policies:
            raise ValueError(f"task {task!r} has no reward policy {chosen!r}"
                             f" (it has {', '.join(found.reward_policies)})")
        reply = text if isinstance(text, str) else ""
        parsed = found.parse(reply, variant, chosen)
        try:
            value = float(found.reward(parsed, answer))
        except (ValueError, TypeError, IndexError, KeyError) as error:
            raise ValueError(f"viubench reward: {answer[:80]!r} is not an answer of"
                             f" {task}:{variant} ({type(error).__name__}: {error})") from None
        return min(1.0, max(0.0, value)) if value == value else 0.0

    def _task(self, task: str, variant: str) -> Task:
        if task not in self.tasks:
            raise ValueError(f"no task {task!r} (known: {', '.join(sorted(self.tasks))})")
        found = self.tasks[task]
        if variant not in found.variants:
            raise ValueError(f"task {task!r} has no variant {variant!r}")
        return found

    # --- TRL ---------------------------------------------------------------------------------

    def trl(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),
            completion_ids: Sequence[Any] | None = None, **columns: Any) -> list[float]:
        """TRL's reward-function call: one reward per completion, columns repeated per
        generation; logs `rewards/viubench/<task>` (beside TRL's own `rewards/<function>/mean`)
        through `log_metric` when TRL passes it."""
        tasks, variants, answers = (_column(columns, name, len(completions))
                                    for name in ("task", "variant", "answer"))
        policies = columns.get("reward_policy") or [None] * len(completions)
        rewards = [self.reward(str(t), str(v), str(a), completion_text(c), p)
                   for t, v, a, c, p in zip(tasks, variants, answers, completions, policies)]
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            _log_task_means(log_metric, tasks, rewards)
        return rewards

    # --- verl --------------------------------------------------------------------------------

    def verl(self, data_source: str, solution_str: str, ground_truth: str,
             extra_info: Mapping[str, Any] | None = None, **kwargs: Any) -> float:
        task, variant = parse_data_source(data_source)
        policy = (extra_info or {}).get("reward_policy")
        return self.reward(task, variant, str(ground_truth), solution_str, policy)

    # --- EasyR1 ------------------------------------------------------------------------------

    def easyr1_one(self, reward_input: Mapping[str, Any]) -> dict[str, float]:
        truth = parse_easyr1_ground_truth(reward_input["ground_truth"])
        value = self.reward(truth["task"], truth["variant"], truth["answer"],
                            reward_input.get("response"), truth.get("policy"))
        return {"overall": value}

    def easyr1(self, reward_inputs: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
        return [self.easyr1_one(item) for item in reward_inputs]


def completion_text(completion: Any) -> str:
    """The reply text of a TRL completion: a string, or chat messages whose last assistant
    turn holds a string or text parts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(str(part.get("text", "")) for part in content
                           if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _column(columns: Mapping[str, Any], name: str, count: int) -> Sequence[Any]:
    values = columns.get(name)
    if values is None or len(values) != count:
        raise ValueError(f"viubench reward: the dataset needs a column {name!r} with one value"
                         f" per completion ({count}); got {type(values).__name__}")
    return values


def _log_task_means(log_metric: Callable[[str, float], Any], tasks: Sequence[Any],
                    rewards: Sequence[float]) -> None:
    by_task: dict[str, list[float]] = defaultdict(list)
    for task, value in zip(tasks, rewards):
        by_task[str(task)].append(value)
    for task, values in sorted(by_task.items()):
        log_metric(f"rewards/viubench/{task}", sum(values) / len(values))


def data_source(task: str, variant: str) -> str:
    """verl's `data_source` of a sample: `viubench/TASK/VARIANT`."""
    return f"{DATA_SOURCE_PREFIX}{task}/{variant}"


def parse_data_source(value: str) -> tuple[str, str]:
    task, sep, variant = str(value).removeprefix(DATA_SOURCE_PREFIX).partition("/")
    if not str(value).startswith(DATA_SOURCE_PREFIX) or not sep:
        raise ValueError(f"data_source {value!r} is not viubench/TASK/VARIANT")
    return task, variant


def easyr1_ground_truth(task: str, variant: str, answer: str,
                        policy: str | None = None) -> str:
    """The `ground_truth` text an EasyR1 row carries: everything the reward needs."""
    fields = {"task": task, "variant": variant, "answer": answer}
    if policy:
        fields["policy"] = policy
    return json.dumps(fields, sort_keys=True)


def parse_easyr1_ground_truth(value: Any) -> dict[str, str]:
    try:
        fields = json.loads(value) if isinstance(value, str) else value
        return {key: str(fields[key]) for key in ("task", "variant", "answer")} | (
            {"policy": str(fields["policy"])} if fields.get("policy") else {})
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError("EasyR1 ground_truth is not viubench's JSON {task, variant, answer}"
                         " (see viubench.rewards.easyr1_ground_truth)") from None


@functools.lru_cache(maxsize=1)
def default_core() -> RewardCore:
    """The core over built-in and installed tasks (loaded once per process: a trainer calls
    the reward thousands of times)."""
    return RewardCore(load_tasks())


def trl_reward(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),
               completion_ids: Sequence[Any] | None = None, **columns: Any) -> list[float]:
    return default_core().trl(prompts, completions, completion_ids, **columns)


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: Mapping[str, Any] | None = None, **kwargs: Any) -> float:
    return default_core().verl(data_source, solution_str, ground_truth, extra_info, **kwargs)


def compute_score_batch(data_sources: Sequence[str], solution_strs: Sequence[str],
                        ground_truths: Sequence[str],
                        extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
                        **kwargs: Any) -> list[float]:
    """verl's batch reward manager's call: one reward per response."""
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    core = default_core()
    return [core.verl(source, text, truth, info) for source, text, truth, info
            in zip(data_sources, solution_strs, ground_truths, infos, strict=True)]


def easyr1_compute_score(reward_inputs: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    return default_core().easyr1(reward_inputs)


def easyr1_compute_score_one(reward_input: Mapping[str, Any]) -> dict[str, float]:
    return default_core().easyr1_one(reward_input)

"""The contract between the engine and a task file.

A task draws its random choices (`draw`), turns frames + draws into a prompt and an answer
(`render`, a pure function, so `verify` can re-derive every sample), parses model answers and
scores them. Frames inside prompt parts are either an int (position of an unmodified frame of
the clip) or a uint8 array (a frame the task changed); the engine stores them as JPEG media.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, Union

import numpy as np

from .video import FrameProtocol, VideoInfo

FrameRef = Union[int, np.ndarray]


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class VideoPart:
    """Frames shown as one video at `fps` frames per second of the sampled timeline."""

    frames: Sequence[FrameRef]
    fps: float


@dataclass(frozen=True)
class ImagePart:
    frame: FrameRef


Part = Union[TextPart, VideoPart, ImagePart]


@dataclass(frozen=True)
class Clip:
    """The decoded frames of one video under one frame protocol."""

    video_path: str          # relative to the build's video folder
    video_hash: str
    info: VideoInfo
    indices: list[int]       # source frame index of every frame below
    frames: np.ndarray       # uint8 [n, h, w, 3]
    sample_fps: float        # frames per second of the sampled timeline
    backend: str
    pixel_bounds: tuple[int, int] = (0, 0)   # (min_area, max_area) the frame size obeys
    decode: str = "all"      # how the frames were reached: "all" or "seek" (`viubench.seeking`)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])


@dataclass(frozen=True)
class Rendered:
    """A sample's prompt parts and answer; `system` is the instruction sent as a system message
    (None: none), and `prompt_set` names the versioned wording it comes from."""

    prompt: list[Part]
    answer: str
    system: str | None = None
    prompt_set: str = ""


@dataclass(frozen=True)
class Variant:
    """A named setting of a task's difficulty knobs."""

    difficulty: str
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Parsed:
    """A parsed model answer: `value` or, when parsing failed, `error` says why."""

    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Columns:
    """How a task's variants appear on leaderboards: `group` heads them ("Counting"), `rank`
    orders groups left to right, `labels` names each variant's column ("Easy")."""

    group: str
    rank: int
    labels: Mapping[str, str]


class TaskSkip(Exception):
    """This sample cannot be made from this video (e.g. no donor video); the reason is recorded."""


@dataclass(frozen=True)
class DonorSource:
    """Other videos of the build, for tasks that borrow footage (the `swap` perturbation)."""

    candidates: Sequence[str]                      # relative paths of the build's files, sorted
    load: Callable[[str, tuple[int, int]], Clip]   # (relative path, frame size) -> Clip; may
                                                   # raise VideoError

    def pick(self, rng: random.Random, clip: Clip, purpose: str) -> tuple[str, Clip]:
        """A random other readable video with different content, at this clip's frame size;
        TaskSkip (saying `purpose` needs one) if the build has none."""
        from .video import VideoError

        others = [path for path in self.candidates if path != clip.video_path]
        rng.shuffle(others)
        for path in others:
            try:
                donor = self.load(path, clip.size)
            except VideoError:
                continue  # an unreadable or too short video is simply not a donor
            if donor.video_hash != clip.video_hash:
                return path, donor
        raise TaskSkip(f"{purpose} needs a second, different readable video in the build")


class Task(Protocol):
    """What every task file provides (see tasks/*.py)."""

    name: str
    version: str
    protocol: FrameProtocol
    variants: Mapping[str, Variant]
    suites: Mapping[str, Sequence[str]]   # suite name -> variants of this task in it
    columns: Columns                      # leaderboard group and column labels

    def draw(self, rng: random.Random, clip: Clip, variant: str,
             donors: DonorSource) -> dict[str, Any]: ...

    def render(self, clip: Clip, variant: str, draws: Mapping[str, Any],
               donors: DonorSource) -> Rendered: ...

    reward_policies: Sequence[str]        # parse policies (viubench.answers) rewards are read
                                          # under, e.g. ("strict", "videossr")

    def parse(self, text: str, variant: str, policy: str = "lenient") -> Parsed:
        """The answer a reply states, under a parse policy of `viubench.answers.POLICIES`.
        Never given the true answer: what the reply's form depends on (how many labels) comes
        from the variant's parameters."""
        ...

    def metrics(self, parsed: Parsed, answer: str) -> dict[str, float]:
        """Benchmark metrics of a (lenient) parse; "score" is the headline, 0 for a failure."""
        ...

    def reward(self, parsed: Parsed, answer: str) -> float:
        """Training reward in [0, 1] of a parse under one of `reward_policies` (0 if it failed)."""
        ...

    def random_answer(self, rng: random.Random, variant: str,
                      timeline: Mapping[str, Any]) -> str:
        """A uniformly random answer of the right form (the random-guess baseline). `timeline`
        is the sample's `frames` record (indices, sample_fps); it never reveals the answer."""
        ...

    def knobs(self, sample: Mapping[str, Any]) -> dict[str, Any]: ...  # optional: difficulty knobs

    # Optional, for the `prior` and `whole` baselines (model_adapters/baselines.py):
    # prior_answer(variant, timeline) -> str: the answer with the highest expected score under
    #   the generator's own distribution, computed exactly (never from a test set's answers).
    # whole_answer(variant, timeline) -> str: an answer covering the whole sampled timeline
    #   (grounding: first to last sampled frame).


class BaseTask:
    """A base class for task files: subclass it, set `name`, `version`, `variants`, `suites`,
    and write `draw`, `render`, `parse` and `metrics`. Everything else has a default:

    * `protocol`: the VIUBench frame protocol; `reward_policies`: ("strict",);
    * `metric_names`: ("score",), the metrics `metrics()` returns ("score" is required);
    * `reward(parsed, answer)`: the "score" metric;
    * `columns`: one leaderboard group named after the task, a column per variant;
    * `answer_space(variant, timeline)`: every answer a sample of the variant can have, or None.
      Declare it (and, if the answers are not equally likely, `answer_weights`) and the task
      gets the `random` baseline (a uniform draw from the space) and the `prior` baseline (the
      candidate with the highest expected score under those weights, computed exactly) for free;
    * `knobs(sample)`: no difficulty knobs of its own.
    """

    name: str = ""
    version: str = "1"
    protocol: FrameProtocol = FrameProtocol()
    variants: Mapping[str, Variant] = {}
    suites: Mapping[str, Sequence[str]] = {}
    reward_policies: Sequence[str] = ("strict",)
    metric_names: Sequence[str] = ("score",)

    @property
    def columns(self) -> Columns:
        return Columns(self.name.replace("_", " ").capitalize(), 100,
                       {variant: variant for variant in self.variants})

    # Required, written by the subclass (see `Task` for their signatures); the loader refuses
    # a task without them.
    draw: Callable[..., dict[str, Any]]
    render: Callable[..., Rendered]
    parse: Callable[..., Parsed]
    metrics: Callable[..., dict[str, float]]

    def reward(self, parsed: Parsed, answer: str) -> float:
        return float(self.metrics(parsed, answer)["score"])

    def answer_space(self, variant: str, timeline: Mapping[str, Any]) -> Sequence[str] | None:
        return None

    def answer_weights(self, variant: str,
                       timeline: Mapping[str, Any]) -> Sequence[float] | None:
        """How likely the generator makes each answer of `answer_space` (None: equally)."""
        return None

    def random_answer(self, rng: random.Random, variant: str,
                      timeline: Mapping[str, Any]) -> str | None:
        space = self.answer_space(variant, timeline)
        return rng.choice(list(space)) if space else None

    def prior_answer(self, variant: str, timeline: Mapping[str, Any]) -> str | None:
        """The answer of the space with the highest expected score under the generator's
        weights (the first such one on ties)."""
        space = list(self.answer_space(variant, timeline) or [])
        if not space:
            return None
        weights = list(self.answer_weights(variant, timeline) or [1.0] * len(space))

        def expected(candidate: str) -> float:
            parsed = self.parse(candidate, variant)
            return sum(w * self.metrics(parsed, truth)["score"]
                       for w, truth in zip(weights, space))

        return max(space, key=expected)

    def knobs(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        return {}

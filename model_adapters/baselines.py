"""Reference adapters that need no model: `random`, `whole`, `prior`, `similarity`, `constant`,
and `blind:<spec>`.

* `random [seed=N]`: a uniformly random answer of the right form for each sample, drawn by the
  sample's task (`Task.random_answer`): counting draws each shape's count from 1..9 (easy) or
  1..16 (hard); jigsaw draws a uniform ordering of the clip labels; grounding draws an interval
  the way the generator draws the true one (length uniform over 8..16 frames, then a start
  uniform over where it fits on the 48-frame timeline). Each sample's draw is seeded by
  (seed, sample id), so a resumed or re-ordered run gives the same answers.
* `whole [seed=N]`: grounding answers the whole sampled span, from the first to the last sampled
  frame (`Task.whole_answer`; it reproduces the VideoSSR paper's grounding "random guess" row);
  other tasks answer like `random`.
* `prior`: the best fixed answer of each variant under the generator's own distribution,
  computed exactly by the task (`Task.prior_answer`), never from the test set's answers: what a
  blind model that learned the answer distribution would score.
* `similarity solver=context|continuity|cohesion [order=random|border]
  [measure=block-ssim|dhash]`: a solver that compares the prompt's pixels and never looks at
  meaning (`Task.similarity_answer`; MVP has it): `context` takes the candidates least like any
  shown frame, `continuity` those most like the gap's borders, `cohesion` those most alike
  among themselves; the picks are ordered at random (default) or by border.
* `constant text=...`: the same text for every sample (a shortcut probe: e.g. `1,1,1`).
* `blind:<spec>`: asks the adapter `<spec>` with every image and video part removed, so the
  model sees only the words. Items a blind model solves above chance leak their answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

from viubench.adapters import (Adapter, AdapterSpec, Request, Response, adapter, batching, create,
                               failed, option, parse_spec)
from viubench.registry import load_tasks
from viubench.records import derive_rng


class _TaskAnswers(ABC):
    """A baseline whose answer for each sample comes from the sample's task, never from the
    test set's answers."""

    default_concurrency = 1
    default_batch_size = 256
    name = ""

    def __init__(self, target: str = "", seed: str = "0",
                 task_modules: Sequence[str] = ()) -> None:
        self.seed = option(self.name or "baseline", "seed", seed, int) or 0
        self.tasks = load_tasks(task_modules)

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        return [self._one(request) for request in requests]

    def _one(self, request: Request) -> Response:
        task = self.tasks.get(request.task)
        if task is None:
            return failed("fatal", f"unknown task {request.task!r}")
        try:
            text = self.answer(task, request)
        except (ValueError, OSError) as error:
            return failed("fatal", f"{self.name}: {error}")
        if text is None:
            return failed("fatal", f"task {request.task!r} offers no {self.name} answer")
        return Response(text=text)

    @abstractmethod
    def answer(self, task: Any, request: Request) -> str | None:
        """This baseline's answer text for `request`, or None when `task` offers none."""

    def random(self, task: Any, request: Request) -> str | None:
        """The task's random answer, seeded by (seed, sample id)."""
        if not hasattr(task, "random_answer"):
            return None
        rng = derive_rng(self.seed, "random-baseline", request.id)
        return task.random_answer(rng, request.variant, request.timeline)

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.name, "seed": self.seed,
                "tasks": {name: task.version for name, task in sorted(self.tasks.items())}}

    def close(self) -> None:
        """Nothing to release: the baselines hold no model, file or connection."""
        return None


@adapter("random")
class RandomAdapter(_TaskAnswers):
    """Uniformly random answers of the right form (seeded per sample)."""

    name = "random"

    def answer(self, task: Any, request: Request) -> str | None:
        return self.random(task, request)


@adapter("whole")
class WholeAdapter(_TaskAnswers):
    """Grounding: the whole sampled span (first to last sampled frame); other tasks: random."""

    name = "whole"

    def answer(self, task: Any, request: Request) -> str | None:
        if hasattr(task, "whole_answer"):
            return task.whole_answer(request.variant, request.timeline)
        return self.random(task, request)


@adapter("prior")
class PriorAdapter(_TaskAnswers):
    """The answer with the highest expected score under the generator's own distribution."""

    name = "prior"

    def answer(self, task: Any, request: Request) -> str | None:
        if not hasattr(task, "prior_answer"):
            return None
        return task.prior_answer(request.variant, request.timeline)


@adapter("similarity")
class SimilarityAdapter(_TaskAnswers):
    """A pixel-similarity solver of the sample's task (shortcut audit; see the module doc)."""

    name = "similarity"

    def __init__(self, target: str = "", seed: str = "0", task_modules: Sequence[str] = (),
                 solver: str = "context", order: str = "random",
                 measure: str = "block-ssim") -> None:
        super().__init__(target, seed, task_modules)
        self.solver, self.order, self.measure = solver or target, order, measure

    def answer(self, task: Any, request: Request) -> str | None:
        if not hasattr(task, "similarity_answer"):
            return None
        rng = derive_rng(self.seed, "similarity-baseline", request.id)
        return task.similarity_answer(request, self.solver, self.measure, self.order, rng)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "solver": self.solver, "order": self.order,
                "measure": self.measure}


@adapter("constant")
class ConstantAdapter:
    """The same answer text for every sample."""

    default_concurrency = 1
    default_batch_size = 256

    def __init__(self, target: str = "", text: str = "") -> None:
        self.text = text or target
        if not self.text:
            raise ValueError("constant needs the answer text: constant text=1,1,1")

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        return [Response(text=self.text) for _ in requests]

    def describe(self) -> dict[str, Any]:
        return {"adapter": "constant", "text": self.text}

    def close(self) -> None:
        pass


@adapter("blind")
class BlindAdapter:
    """Another adapter asked with the text parts only (no frames): `blind:<spec>`."""

    def __init__(self, target: str, adapter_modules: Sequence[str] = (),
                 task_modules: Sequence[str] = (), **options: str) -> None:
        if not target:
            raise ValueError("blind needs the adapter to ask: blind:<spec>, e.g. blind:random")
        inner = parse_spec(target)
        self.inner_spec = AdapterSpec(inner.name, inner.target, {**inner.options, **options})
        self.inner: Adapter = create(self.inner_spec, adapter_modules, task_modules)
        self.default_concurrency, self.default_batch_size = batching(self.inner)

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        responses = self.inner.generate([request.text_only() for request in requests])
        return [Response(r.text, r.error, r.kind, r.retry_after, {**r.info, "blind": True})
                for r in responses]

    def describe(self) -> dict[str, Any]:
        return {"adapter": "blind", "inner_spec": self.inner_spec.redacted(),
                "inner": self.inner.describe()}

    def close(self) -> None:
        self.inner.close()

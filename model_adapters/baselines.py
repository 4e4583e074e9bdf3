"""Reference adapters that need no model: `random`, `constant`, and `blind:<spec>`.

* `random [seed=N]`: a uniformly random answer of the right form for each sample, drawn by the
  sample's task (`Task.random_answer`): counting draws each shape's count from 1..9 (easy) or
  1..16 (hard); jigsaw draws a uniform ordering of the clip labels; grounding draws an interval
  the way the generator draws the true one (length uniform over 8..16 frames, then a start
  uniform over where it fits on the 48-frame timeline). Each sample's draw is seeded by
  (seed, sample id), so a resumed or re-ordered run gives the same answers.
* `constant text=...`: the same text for every sample (a shortcut probe: e.g. `1,1,1`).
* `blind:<spec>`: asks the adapter `<spec>` with every image and video part removed, so the
  model sees only the words. Items a blind model solves above chance leak their answer.
"""

from __future__ import annotations

from typing import Any, Sequence

from viubench.adapters import (Adapter, AdapterSpec, Request, Response, adapter, create, failed,
                               parse_spec)
from viubench.registry import load_tasks
from viubench.sample import derive_rng


@adapter("random")
class RandomAdapter:
    """Uniformly random answers of the right form (seeded per sample)."""

    default_concurrency = 1
    default_batch_size = 256

    def __init__(self, target: str = "", seed: str = "0", task_module: str = "") -> None:
        self.seed = int(seed)
        self.tasks = load_tasks([task_module] if task_module else [])

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        return [self._one(request) for request in requests]

    def _one(self, request: Request) -> Response:
        task = self.tasks.get(request.task)
        if task is None or not hasattr(task, "random_answer"):
            return failed("fatal", f"task {request.task!r} offers no random answer")
        rng = derive_rng(self.seed, "random-baseline", request.id)
        return Response(text=task.random_answer(rng, request.variant, request.timeline))

    def describe(self) -> dict[str, Any]:
        return {"adapter": "random", "seed": self.seed,
                "tasks": {name: task.version for name, task in sorted(self.tasks.items())}}

    def close(self) -> None:
        pass


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

    def __init__(self, target: str, **options: str) -> None:
        if not target:
            raise ValueError("blind needs the adapter to ask: blind:<spec>, e.g. blind:random")
        inner = parse_spec(target)
        self.inner_spec = AdapterSpec(inner.name, inner.target, {**inner.options, **options})
        self.inner: Adapter = create(self.inner_spec)
        self.default_concurrency = self.inner.default_concurrency
        self.default_batch_size = self.inner.default_batch_size

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        responses = self.inner.generate([request.text_only() for request in requests])
        return [Response(r.text, r.error, r.kind, r.retry_after, {**r.info, "blind": True})
                for r in responses]

    def describe(self) -> dict[str, Any]:
        return {"adapter": "blind", "inner_spec": self.inner_spec.redacted(),
                "inner": self.inner.describe()}

    def close(self) -> None:
        self.inner.close()

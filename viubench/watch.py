"""`viubench watch CKPT_DIR`: evaluate each training checkpoint once it is completely written,
and keep a learning curve (`viubench.learning_curve`).

A checkpoint (`viubench.checkpoints`) is a folder `checkpoint-<step>`. It is ready
when its files say it is complete (`completeness_problem`: trainer_state.json, a model config,
every weight file whole) and its snapshot (file names, sizes, modification times) did not change
between two consecutive polls. A half-written checkpoint is therefore never evaluated.

Each checkpoint gets a run folder OUT/checkpoint-<step> (`viubench.runner`: resumable, locked
while written), scored as `viubench eval` scores it. OUT/watch.jsonl records what became of each
checkpoint (evaluated, failed, skipped: deleted before it was evaluated); its last record per
checkpoint counts. The curve is rebuilt from that log and the run folders after each checkpoint,
so it holds exactly one point per checkpoint, and a restarted watch skips what is finished,
resumes a run it was interrupted in, and tries once more the checkpoints that failed.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .adapters import AdapterSpec, create, resolve
from .checkpoints import CHECKPOINT_NAME, Checkpoint, Readiness, find_checkpoints
from .cli_eval import Outcome, run_outcome
from .folderlock import exclusive
from .learning_curve import (CURVE_CSV, CURVE_PNG, FAILED, OK, SKIPPED, CurvePoint, draw_png,
                             points_from_results, points_without_score, write_csv)
from .progress import RunProgress
from .records import append_jsonl, read_jsonl, truncate_lines
from .runfolder import RESULTS, predictions_hash, read_results, read_run, run_scope
from .runner import GenerationSettings, RunAborted, RunOptions, run_eval
from .score import score_run
from .testset import iter_samples, load_build

PLACEHOLDERS = ("{checkpoint}", "{step}", "{name}")
LOG = "watch.jsonl"
DEFAULT_OUT = "viubench-watch"         # inside CKPT_DIR; not named checkpoint-*
EVALUATED, STATUSES = "evaluated", ("evaluated", FAILED, SKIPPED)


class WatchError(ValueError):
    """Bad input to `watch` (a missing folder, a spec without a placeholder, a bad log)."""



# ---------------------------------------------------------------- settings

@dataclass(frozen=True)
class WatchSettings:
    """What `watch` was asked to do (parsed and checked from the command line)."""

    checkpoints: str
    testset: str
    spec: AdapterSpec                          # a template: see `spec_for`
    out: str
    adapter_modules: Sequence[str] = ()
    task_modules: Sequence[str] = ()
    generation: GenerationSettings = GenerationSettings()
    options: RunOptions = RunOptions()
    max_error_rate: float = 0.0
    every: int = 1
    poll: float = 30.0
    once: bool = False
    idle_exit: float | None = None


def fill(text: str, checkpoint: Checkpoint) -> str:
    return (text.replace("{checkpoint}", checkpoint.path).replace("{step}", str(checkpoint.step))
            .replace("{name}", checkpoint.name))


def spec_for(template: AdapterSpec, checkpoint: Checkpoint) -> AdapterSpec:
    """The spec of one checkpoint: {checkpoint} (its absolute path), {step} and {name} filled
    in the target and in every option's value."""
    return AdapterSpec(template.name, fill(template.target, checkpoint),
                       {key: fill(value, checkpoint) for key, value in template.options.items()})


def check_template(spec: AdapterSpec, adapter_modules: Sequence[str]) -> None:
    """WatchError unless the spec names a known adapter and places a checkpoint in it."""
    texts = [spec.target, *spec.options.values()]
    if not any(mark in text for text in texts for mark in PLACEHOLDERS):
        raise WatchError(f"--model {spec.redacted()!r} does not say where the checkpoint goes:"
                         " put {checkpoint} (its path), {step} or {name} in it, e.g."
                         " 'hf:{checkpoint}'")
    resolve(spec, adapter_modules)


def check_folders(checkpoints: str, out: str) -> None:
    if not os.path.isdir(checkpoints):
        raise WatchError(f"{checkpoints}: no such folder (the trainer's output_dir)")
    if CHECKPOINT_NAME.fullmatch(os.path.basename(os.path.normpath(out))):
        raise WatchError(f"--out {out}: a folder named checkpoint-* would be taken for one")
    if os.path.realpath(out) == os.path.realpath(checkpoints):
        raise WatchError(f"--out {out} is CKPT_DIR itself: its run folders would be named like"
                         " the checkpoints; give a sub-folder or another folder")


# ---------------------------------------------------------------- the log

def read_log(out: str) -> dict[str, dict[str, Any]]:
    """Checkpoint name -> its last record in OUT/watch.jsonl (untrusted: names and statuses
    are checked, so run folders stay inside OUT)."""
    path = os.path.join(out, LOG)
    if not os.path.exists(path):
        return {}
    last: dict[str, dict[str, Any]] = {}
    number = 0
    for number, record in enumerate(read_jsonl(path), 1):
        name, step = record.get("checkpoint"), record.get("step")
        match = CHECKPOINT_NAME.fullmatch(name) if isinstance(name, str) else None
        if (not match or int(match.group(1)) != step or record.get("status") not in STATUSES
                or not isinstance(record.get("reason", ""), (str, type(None)))):
            raise WatchError(f"{path}:{number}: not a watch record")
        last[str(name)] = record
    truncate_lines(path, number)   # a line cut off by a kill would spoil the next one appended
    return last


def log_record(checkpoint: Checkpoint, status: str, reason: str | None) -> dict[str, Any]:
    return {"record": "checkpoint", "checkpoint": checkpoint.name, "step": checkpoint.step,
            "status": status, "reason": reason,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def finished_run(rundir: str, limit: int | None) -> bool:
    """Whether a run folder holds scores of all its current answers, for this scope."""
    if not os.path.exists(os.path.join(rundir, RESULTS)):
        return False
    _, records = read_run(rundir)
    return (run_scope(records) == limit
            and read_results(rundir).get("predictions_hash") == predictions_hash(rundir))


# ---------------------------------------------------------------- the watcher

@dataclass
class Progress:
    """What one poll found, for the waiting line and for --once / --idle-exit."""

    evaluated: int = 0
    first_seen: int = 0
    waiting: dict[str, str] = field(default_factory=dict)   # name -> why not ready


class Watcher:
    def __init__(self, settings: WatchSettings) -> None:
        self.settings = settings
        os.makedirs(settings.out, exist_ok=True)
        self.readiness = Readiness()
        self.tried: set[str] = set()        # failed this session: not tried again until restart
        self.keys = sorted({f"{s['task']}:{s['variant']}"
                            for s in iter_samples(settings.testset, settings.options.limit)})
        self.log = read_log(settings.out)
        self.last_line = ""
        self.failures = 0

    # ------------------------------------------------------------ main loop

    def run(self) -> int:
        self.recover()
        self.redraw()
        quiet_since = time.monotonic()
        while True:
            progress = self.poll_once()
            if progress.evaluated or progress.first_seen:
                quiet_since = time.monotonic()
            elif self._done(progress, quiet_since):
                if progress.waiting:
                    print(f"not ready, left for a later run: {_reasons(progress)}", flush=True)
                return 1 if self.failures else 0
            self.say_waiting(progress)
            time.sleep(self.settings.poll)

    def _done(self, progress: Progress, quiet_since: float) -> bool:
        if self.settings.once:
            return True
        idle = self.settings.idle_exit
        return idle is not None and time.monotonic() - quiet_since >= idle

    def poll_once(self) -> Progress:
        """Look at every checkpoint once; evaluate the ready ones, oldest first."""
        progress = Progress()
        present = {c.name: c for c in find_checkpoints(self.settings.checkpoints)
                   if c.step % self.settings.every == 0}
        self.note_deleted(present)
        for checkpoint in present.values():
            if self.settled(checkpoint):
                continue
            first = checkpoint.name not in self.readiness.seen
            problem = self.readiness.problem(checkpoint)
            if problem is None:
                self.evaluate(checkpoint)
                progress.evaluated += 1
            else:
                progress.first_seen += first
                progress.waiting[checkpoint.name] = problem
        return progress

    def settled(self, checkpoint: Checkpoint) -> bool:
        status = self.log.get(checkpoint.name, {}).get("status")
        return status in (EVALUATED, SKIPPED) or checkpoint.name in self.tried

    def note_deleted(self, present: Mapping[str, Checkpoint]) -> None:
        """Checkpoints seen unfinished and now gone (the trainer's rotation): skipped, said."""
        for name in sorted(set(self.readiness.seen) - set(present)):
            del self.readiness.seen[name]
            step = int(name.split("-")[1])
            gone = Checkpoint(step, name, os.path.join(self.settings.checkpoints, name))
            if not self.settled(gone) and self.log.get(name, {}).get("status") != FAILED:
                self.skip(gone, "deleted before it was evaluated")

    def skip(self, checkpoint: Checkpoint, reason: str) -> None:
        self.record(checkpoint, SKIPPED, reason)
        self.redraw()
        _say(f"viubench watch: {checkpoint.name} was {reason}; skipped")

    def recover(self) -> None:
        """After a restart: run folders finished but not logged (killed between scoring and
        logging) are logged as evaluated; unfinished ones whose checkpoint is gone, skipped."""
        out, limit = self.settings.out, self.settings.options.limit
        for run in find_checkpoints(out):
            if self.log.get(run.name, {}).get("status") in (EVALUATED, SKIPPED):
                continue
            source = os.path.join(self.settings.checkpoints, run.name)
            if finished_run(run.path, limit) and not self._over_limit(run.path):
                self.record(Checkpoint(run.step, run.name, source), EVALUATED, None)
            elif not os.path.isdir(source) and run.name not in self.log:
                self.record(Checkpoint(run.step, run.name, source), SKIPPED,
                            "deleted before its evaluation finished")

    def _over_limit(self, rundir: str) -> bool:
        outcome = run_outcome(rundir, self.settings.testset, self.settings.options.limit)
        return outcome.error_rate > self.settings.max_error_rate

    def record(self, checkpoint: Checkpoint, status: str, reason: str | None) -> None:
        entry = log_record(checkpoint, status, reason)
        with open(os.path.join(self.settings.out, LOG), "a", encoding="utf-8") as handle:
            append_jsonl(handle, entry)
        self.log[checkpoint.name] = entry

    # ------------------------------------------------------------ one checkpoint

    def evaluate(self, checkpoint: Checkpoint) -> None:
        """Evaluate, score and log one checkpoint; a failure is logged and said, not raised."""
        settings = self.settings
        spec = spec_for(settings.spec, checkpoint)
        rundir = os.path.join(settings.out, checkpoint.name)
        try:
            adapter = create(spec, settings.adapter_modules, settings.task_modules)
        except Exception as error:  # noqa: BLE001 - any checkpoint that cannot load is a failure
            if not os.path.isdir(checkpoint.path):
                return self.skip(checkpoint, "deleted before it was evaluated")
            return self.fail(checkpoint, f"cannot load {spec.redacted()}:"
                                         f" {type(error).__name__}: {error}")
        try:
            with RunProgress(f"{checkpoint.name}", settings.options.keep_errors) as progress:
                run_eval(settings.testset, spec, adapter, rundir, settings.generation,
                         settings.options, progress)
        except RunAborted as aborted:
            return self.fail(checkpoint, f"stopped: {aborted}")
        finally:
            adapter.close()
        outcome = run_outcome(rundir, settings.testset, settings.options.limit)
        results = score_run(rundir, settings.testset, settings.task_modules)
        if outcome.error_rate > settings.max_error_rate:
            return self.fail(checkpoint, f"{outcome.describe()}, more errors than"
                                         f" --max-error-rate {settings.max_error_rate:g} allows")
        self.record(checkpoint, EVALUATED, None)
        self.redraw()
        print(headline(checkpoint, results, outcome), flush=True)
        return None

    def fail(self, checkpoint: Checkpoint, reason: str) -> None:
        self.tried.add(checkpoint.name)
        self.failures += 1
        self.record(checkpoint, FAILED, reason)
        self.redraw()
        _say(f"viubench watch: {checkpoint.name} FAILED (no score): {reason}; going on")

    # ------------------------------------------------------------ the curve and the console

    def points(self) -> list[CurvePoint]:
        """One set of rows per logged checkpoint, from its last record and its run folder."""
        points: list[CurvePoint] = []
        for name, entry in sorted(self.log.items(), key=lambda item: item[1]["step"]):
            rundir = os.path.join(self.settings.out, name)
            scored = os.path.exists(os.path.join(rundir, RESULTS))
            status = OK if entry["status"] == EVALUATED else entry["status"]
            note = entry.get("reason") or ""
            if scored and entry["status"] != SKIPPED:
                points += points_from_results(entry["step"], name, read_results(rundir),
                                              status, note)
            else:
                points += points_without_score(entry["step"], name, self.keys,
                                               status if status != OK else FAILED,
                                               note or "results.json is missing")
        return points

    def redraw(self) -> None:
        points = self.points()
        write_csv(os.path.join(self.settings.out, CURVE_CSV), points)
        title = f"{self.settings.spec.redacted()} on {os.path.basename(self.settings.testset)}"
        draw_png(os.path.join(self.settings.out, CURVE_PNG), points, title)

    def say_waiting(self, progress: Progress) -> None:
        """One line when what watch is waiting for changes (not one per poll)."""
        done = sum(entry["status"] == EVALUATED for entry in self.log.values())
        pending = _reasons(progress)
        line = (f"waiting for checkpoints in {self.settings.checkpoints} ({done} evaluated"
                f"{'; ' + pending if pending else ''})")
        if line != self.last_line and not self.settings.once:
            print(line, flush=True)
        self.last_line = line


def _reasons(progress: Progress) -> str:
    return "; ".join(f"{name}: {why}" for name, why in sorted(progress.waiting.items()))


def headline(checkpoint: Checkpoint, results: Mapping[str, Any], outcome: Outcome) -> str:
    """'checkpoint-200 (step 200): object_counting:easy 25.0, ...; 8 of 8 answered' (the CIs
    are in curve.csv)."""
    scores = ", ".join(f"{key} {row['score']:.1f}"
                       for key, row in sorted(results["variants"].items()))
    return (f"{checkpoint.name} (step {checkpoint.step}): {scores};"
            f" {outcome.answered} of {outcome.n} answered")


def _say(line: str) -> None:
    sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)


def watch(settings: WatchSettings) -> int:
    """Watch until --once is done or --idle-exit passes (else until interrupted): 0 when no
    checkpoint failed, 1 when one did. One watcher per output folder."""
    check_folders(settings.checkpoints, settings.out)
    check_template(settings.spec, settings.adapter_modules)
    load_build(settings.testset)   # a test set that is not one: one error line, nothing made
    with exclusive(settings.out, "watch"):
        return Watcher(settings).run()

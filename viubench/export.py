"""`viubench export SET --format verl|easyr1|trl --out DIR`: a built set as the dataset a trainer
reads, with the command line that trains on it.

Writes `DIR/train.parquet` (rows from `viubench.export_rows`) and `DIR/README.md` (what the
rows hold and the training command). verl and EasyR1 read the parquet file by its path; TRL
reads the folder (`load_dataset(DIR)`, as `trl grpo --dataset_name DIR` does), its `images`
column typed as images so that they arrive decoded.

Every sample is read through `viubench.testset.iter_samples` (shape, size and media containment
checked) and its answer must earn reward 1.0 through `viubench.rewards` under the chosen policy
before anything is written: a row whose target the reward cannot give is never exported. Frames
are referenced, not copied: the rows hold absolute paths into the set's `media/`, so the set
must stay where it is (and be readable from the training machines). A set built with
`--pack N` holds its frames in ZIP packs, which trainers cannot read: its frames are extracted
into `DIR/media/` and the rows name those files.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import viubench.rewards as rewards_module
from viubench.export_rows import ROW_MAKERS, Media, sample_media
from viubench.rewards import default_core
from viubench.testset import MEDIA, SetMedia, iter_samples, load_build

FORMATS = tuple(ROW_MAKERS)
DATA_FILE, CARD_FILE = "train.parquet", "README.md"
DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"   # only printed in the training command
TOKEN_PATCH = 28   # Qwen2/2.5-VL: 14-pixel patches merged 2x2, one token per 28x28 pixels


class ExportError(ValueError):
    """An export that cannot be made; the message says why in one line."""


@dataclass
class Exported:
    """What an export wrote: the rows' file, counts per task:variant, prompt size bounds."""

    path: str
    rows: int = 0
    per_variant: Counter = field(default_factory=Counter)
    pixel_bounds: tuple[int, int] = (1 << 62, 0)
    prompt_tokens: int = 0    # an estimate for Qwen2/2.5-VL, for the printed command
    warnings: list[str] = field(default_factory=list)


def run_export(args: argparse.Namespace) -> int:
    exported = export_set(args.testset, args.format, args.out, args.reward_policy, args.limit,
                          args.model)
    tasks: Counter = Counter()
    for key, count in exported.per_variant.items():
        tasks[key.partition(":")[0]] += count
    print(f"{exported.path}: {exported.rows} {args.format} rows"
          f" ({', '.join(f'{task} {n}' for task, n in sorted(tasks.items()))})")
    print(format_notes(args.format))
    for warning in exported.warnings:
        print(f"note: {warning}")
    print("train with:")
    print(training_command(args.format, args.out, exported, args.model))
    return 0


def export_set(testset: str, fmt: str, out: str, policy: str | None = None,
               limit: int | None = None, model: str = DEFAULT_MODEL) -> Exported:
    """Write `out/train.parquet` and `out/README.md` for trainer `fmt`; see the module text."""
    if fmt not in ROW_MAKERS:
        raise ExportError(f"no export format {fmt!r} (choose {', '.join(FORMATS)})")
    build_record = load_build(testset)
    _check_out(out)
    with SetMedia(os.path.realpath(testset), extract_to=os.path.abspath(out)) as media:
        rows = list(_rows(testset, fmt, policy, limit, media))
    if not rows:
        raise ExportError(f"{testset}: no samples to export")
    exported = _summary(os.path.join(out, DATA_FILE), rows)
    exported.warnings = build_warnings(testset, build_record)
    if media.packed:
        exported.warnings.append(f"{testset} stores its frames in packs: the rows name copies"
                                 f" extracted into {os.path.join(out, MEDIA)}")
    os.makedirs(out, exist_ok=True)
    write_parquet([row for row, _, _ in rows], exported.path, images=fmt == "trl")
    _write_text(os.path.join(out, CARD_FILE), dataset_card(fmt, testset, out, exported, model))
    return exported


def build_warnings(testset: str, build_record: dict[str, Any]) -> list[str]:
    """What the user should know about the set's build before training on it."""
    warnings = []
    if build_record.get("status") != "complete":
        warnings.append(f"{testset} is an unfinished build (status"
                        f" {str(build_record.get('status'))[:20]!r}): only its samples so far")
    if build_record.get("purpose") != "training":
        warnings.append(f"{testset} was built as a benchmark set, not with --for-training:"
                        " never evaluate on a set you trained on")
    return warnings


def _check_out(out: str) -> None:
    """The output folder is new, empty or an earlier export: TRL loads every data file in it."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ExportError(f"{out}: exists and is not a folder")
    if os.path.isdir(out):
        others = sorted(set(os.listdir(out)) - {DATA_FILE, CARD_FILE, MEDIA})
        if others:
            raise ExportError(f"{out}: holds other files ({', '.join(others[:3])}); export into"
                              " a new or empty folder")


def _rows(testset: str, fmt: str, policy: str | None, limit: int | None,
          media: SetMedia) -> Iterator[tuple[dict[str, Any], Media, str]]:
    core = default_core()
    make_row = ROW_MAKERS[fmt]
    for index, sample in enumerate(iter_samples(testset, limit, media)):
        where = f"{os.path.join(testset, 'samples.jsonl')}:{index + 1}"
        try:
            earned = core.reward(sample["task"], sample["variant"], sample["answer"],
                                 sample["answer"], policy)
        except ValueError as error:   # an unknown task, variant or policy; an odd answer
            raise ExportError(f"{where}: cannot reward the answer {sample['answer'][:80]!r}:"
                              f" {error}") from None
        if earned != 1.0:
            raise ExportError(f"{where}: the answer {sample['answer'][:80]!r} earns reward"
                              f" {earned:.3g}, not 1, under its task's reward")
        prompt = sample_media(sample, media.path, where)
        yield (make_row(sample, prompt, index, policy), prompt,
               f"{sample['task']}:{sample['variant']}")


def _summary(path: str, rows: list[tuple[dict[str, Any], Media, str]]) -> Exported:
    exported = Exported(path, rows=len(rows))
    low, high = exported.pixel_bounds
    for _, media, key in rows:
        exported.per_variant[key] += 1
        low, high = min(low, media.pixel_bounds[0]), max(high, media.pixel_bounds[1])
        exported.prompt_tokens = max(exported.prompt_tokens, _token_estimate(media))
    exported.pixel_bounds = (low, high)
    return exported


def _token_estimate(media: Media) -> int:
    """Prompt tokens of a sample for a Qwen2/2.5-VL model: frames at the largest stored area,
    a token per 28x28 pixels, plus the text at about 3 characters a token."""
    frames = sum(len(frames) for frames, _ in media.videos()) + len(media.images())
    text = sum(len(value) for kind, value in media.segments if kind == "text")
    return math.ceil(frames * media.pixel_bounds[1] / TOKEN_PATCH ** 2 + text / 3)


def write_parquet(rows: list[dict[str, Any]], path: str, images: bool) -> None:
    """The rows as one parquet file, written whole then moved into place; with `images`, the
    `images` column is typed as a list of images (paths, decoded when read)."""
    try:
        import datasets
    except ImportError:
        raise ExportError("viubench export needs the `datasets` and `pyarrow` packages"
                          " (pip install 'viubench[train]')") from None
    datasets.disable_progress_bars()
    table = datasets.Dataset.from_list(rows)
    if images:
        table = table.cast_column("images", datasets.List(datasets.Image()))
    partial = path + ".partial"
    table.to_parquet(partial)
    os.replace(partial, path)


def _write_text(path: str, text: str) -> None:
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


# --- what the user reads ------------------------------------------------------------------

NOTES = {
    "verl": "each <video> is its frame list with the sample's own fps (sample_fps) and pixel"
            " bounds; the reward routes by data_source viubench/TASK/VARIANT",
    "easyr1": "EasyR1 reads a video given as frames at 2 fps whatever its real rate (and a row"
              " cannot mix images and videos), so every video goes as its frames, one <image>"
              " each, after a line stating its frame count and real fps: answers in seconds"
              " stay true; the task, variant and answer travel in `answer` (ground_truth)",
    "trl": "TRL has no video column: every video goes as its frames, one image each, after a"
           " line stating its frame count and fps; the task, variant and answer columns reach"
           " viubench.rewards.trl_reward",
}


def format_notes(fmt: str) -> str:
    return (f"{NOTES[fmt]}; frames are absolute paths into the test set's media (not copied:"
            " keep the set where it is)")


def training_command(fmt: str, out: str, exported: Exported, model: str) -> str:
    """A command line that trains on the export with viubench's reward."""
    data = os.path.abspath(exported.path)
    rewards = os.path.abspath(rewards_module.__file__ or "")
    tokens = 512 * math.ceil((exported.prompt_tokens + 256) / 512)
    low, high = exported.pixel_bounds
    if fmt == "verl":
        groups = [("python3", "-m", "verl.trainer.main_ppo"), ("algorithm.adv_estimator=grpo",),
                  (f"data.train_files={data}",), (f"data.val_files={data}",),
                  (f"data.max_prompt_length={tokens}",), ("data.max_response_length=256",),
                  (f"actor_rollout_ref.model.path={model}",),
                  (f"custom_reward_function.path={rewards}",),
                  ("custom_reward_function.name=compute_score",)]
    elif fmt == "easyr1":
        groups = [("python3", "-m", "verl.trainer.main"), ("config=examples/config.yaml",),
                  (f"data.train_files={data}",), (f"data.val_files={data}",),
                  ("data.prompt_key=prompt",), ("data.answer_key=answer",),
                  ("data.image_key=images",), ("data.format_prompt=null",),
                  (f"data.min_pixels={low}",), (f"data.max_pixels={high}",),
                  (f"data.max_prompt_length={tokens}",), ("data.max_response_length=256",),
                  (f"worker.actor.model.model_path={model}",),
                  (f"worker.reward.reward_function={rewards}:easyr1_compute_score",)]
    else:
        groups = [("trl", "grpo"), ("--model_name_or_path", model),
                  ("--dataset_name", os.path.abspath(out)),
                  ("--reward_funcs", "viubench.rewards.trl_reward"),
                  ("--output_dir", "grpo-viubench"), ("--max_completion_length", "256")]
    return " \\\n    ".join(" ".join(shlex.quote(word) for word in group) for group in groups)


CARD_TAILS = {
    "verl": "verl 0.10 names the reward option `reward.custom_reward_function.path/name`.\n"
            "Replace `data.val_files` with an export of a held-out set.",
    "easyr1": "Run it from an EasyR1 checkout (its `examples/config.yaml`). Replace"
              " `data.val_files` with an export of a held-out set.",
    "trl": "`viubench` must be importable where TRL runs (the reward is imported by name).",
}


def dataset_card(fmt: str, testset: str, out: str, exported: Exported, model: str) -> str:
    counts = "\n".join(f"- {key}: {n}" for key, n in sorted(exported.per_variant.items()))
    return (f"# viubench export ({fmt})\n\n"
            f"From the test set `{os.path.abspath(testset)}`: {exported.rows} rows in"
            f" `{DATA_FILE}`.\n\n{counts}\n\n{format_notes(fmt)}.\n\n"
            f"Train with (about {exported.prompt_tokens} prompt tokens at most for a"
            f" Qwen2/2.5-VL model):\n\n```\n"
            f"{training_command(fmt, out, exported, model)}\n```\n\n{CARD_TAILS[fmt]}\n")

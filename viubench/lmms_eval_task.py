"""`viubench export SET --format lmms-eval --out DIR`: a task folder for lmms-eval's
`--include_path`.

    DIR/viubench_<task>_<variant>.yaml   one lmms-eval task per task:variant of the set
    DIR/viubench_all.yaml                the group `viubench_all` of all of them (not
                                         `viubench`: lmms-eval takes a task name that is also
                                         a path in the working folder, e.g. a viubench
                                         checkout's `viubench/`, as that path)
    DIR/docs/viubench_<task>_<variant>.jsonl   its docs (`viubench.lmms_eval_utils` says what
                                         a doc holds), in test-set order
    DIR/utils.py                         the functions the YAML names; they import viubench
    DIR/viubench_export.json             what was exported from which test set (hash), for
                                         `viubench import lmms-eval`

Every sample is read through `viubench.testset.iter_samples` (shape, size and media containment
checked); frames are referenced by absolute path into the set's `media/`, so the set must stay
where it is (a set built with `--pack N` has its frames extracted into `DIR/media/`). Scores are
computed by viubench itself (`process_results` calls `viubench.score.reply_outcome`), so
lmms-eval reports what `viubench score` reports for the same replies; lmms-eval's own stripping
of reasoning tags is turned off for these tasks (`reasoning_tags: none`) since viubench's
parsers read the whole reply.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from typing import Any, Callable, Iterator, Mapping

from . import __version__
from .records import write_json
from .runfolder import testset_fingerprint
from .runner import GenerationSettings, prompt_item
from .testset import MEDIA, BadTestSet, SetMedia, iter_samples, load_build

PREFIX, GROUP = "viubench", "viubench_all"
MANIFEST, UTILS, DOCS = "viubench_export.json", "utils.py", "docs"
FORMAT = "lmms-eval"

UTILS_TEXT = '''"""Written by `viubench export --format lmms-eval`: lmms-eval calls these; they are
viubench's own (`viubench.lmms_eval_utils`), so viubench must be importable where lmms-eval
runs."""

from viubench.lmms_eval_utils import (doc_to_messages, doc_to_target, doc_to_text,  # noqa: F401
                                      doc_to_visual, mean_score, process_results)
'''


class LmmsExportError(ValueError):
    """An export that cannot be made; the message says why in one line."""


def task_name(task: str, variant: str) -> str:
    """The lmms-eval task name of a task:variant (lower case letters, digits, underscores)."""
    return re.sub(r"[^a-z0-9_]+", "_", f"{PREFIX}_{task}_{variant}".lower())


def run_export_lmms_eval(args: argparse.Namespace) -> int:
    for option, given in (("--push-to-hub", getattr(args, "push_to_hub", None)),
                          ("--reward-policy", getattr(args, "reward_policy", None))):
        if given:
            raise LmmsExportError(f"{option} does not apply to --format lmms-eval (it scores"
                                  " with the benchmark metric, as `viubench score` does)")
    manifest = export_lmms_eval(args.testset, args.out, args.limit)
    print(f"{args.out}: {sum(manifest['docs'].values())} docs in {len(manifest['tasks'])}"
          f" lmms-eval tasks (group {GROUP})")
    print("run with (a viubench-importable Python; an OpenAI-compatible server at BASE_URL):")
    print(run_command(args.out))
    return 0


def run_command(out: str) -> str:
    return (f"LMMS_IMAGE_ENCODE_FORMAT=JPEG python -m lmms_eval --model openai --model_args"
            f" model_version=MODEL,base_url=BASE_URL,api_key=KEY --tasks {GROUP} --include_path"
            f" {os.path.abspath(out)} --batch_size 1 --log_samples --output_path LOGDIR")


def export_lmms_eval(testset: str, out: str, limit: int | None = None) -> dict[str, Any]:
    """Write the task folder (see the module text); returns the manifest written."""
    load_build(testset)
    if limit is not None and limit < 1:
        raise LmmsExportError(f"--limit {limit}: give a positive number of samples")
    _clear_out(out)
    media = SetMedia(testset, extract_to=os.path.abspath(out))
    docs: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, str] = {}
    tokens = GenerationSettings()
    fingerprint = testset_fingerprint(testset)
    with media:
        for sample in iter_samples(testset, limit, media):
            name = task_name(sample["task"], sample["variant"])
            key = f"{sample['task']}:{sample['variant']}"
            if keys.setdefault(name, key) != key:
                raise LmmsExportError(f"{testset}: {key} and {keys[name]} share the lmms-eval"
                                      f" task name {name}")
            docs.setdefault(name, []).append(make_doc(sample, media.path, fingerprint["hash"],
                                                      limit))
    if not docs:
        raise LmmsExportError(f"{testset}: no samples to export")
    os.makedirs(os.path.join(out, DOCS), exist_ok=True)
    written = [UTILS, f"{GROUP}.yaml"]
    for name, task_docs in docs.items():
        _write_docs(os.path.join(out, DOCS, f"{name}.jsonl"), task_docs)
        _write_text(os.path.join(out, f"{name}.yaml"),
                    task_yaml(name, os.path.abspath(os.path.join(out, DOCS, f"{name}.jsonl")),
                              tokens.max_new_tokens))
        written += [f"{name}.yaml", f"{DOCS}/{name}.jsonl"]
    _write_text(os.path.join(out, f"{GROUP}.yaml"), group_yaml(list(docs)))
    _write_text(os.path.join(out, UTILS), UTILS_TEXT)
    manifest = {"format": FORMAT, "tool_version": __version__, "testset": fingerprint,
                "limit": limit, "group": GROUP, "tasks": keys,
                "docs": {name: len(task_docs) for name, task_docs in docs.items()},
                "files": sorted(written), **({"frames": MEDIA} if media.packed else {})}
    write_json(os.path.join(out, MANIFEST), manifest)
    return manifest


def make_doc(sample: Mapping[str, Any], file_of: Callable[[str], str], testset_hash: str,
             limit: int | None) -> dict[str, Any]:
    """One lmms-eval doc: plain strings and numbers only (the json loader keeps them as they
    are); the prompt parts as a JSON string, media paths made absolute files by `file_of`."""
    try:
        parts = [prompt_item(part, file_of) for part in sample["prompt"]]
    except BadTestSet:      # a media file that cannot be read says so itself
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise LmmsExportError(f"sample {sample['id']}: a malformed prompt part"
                              f" ({type(error).__name__}: {error})") from None
    return {"sample_id": sample["id"], "task": sample["task"], "variant": sample["variant"],
            "version": str(sample.get("version", "")), "answer": sample["answer"],
            "video": sample["video"]["hash"], "system": sample.get("system") or "",
            "prompt": json.dumps(parts, ensure_ascii=False), "testset": testset_hash,
            "scope": limit or 0}


def task_yaml(name: str, docs_path: str, max_new_tokens: int) -> str:
    """One task's YAML (`!function` tags are lmms-eval's; plain values are JSON-quoted)."""
    return "\n".join([
        f"task: {name}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {json.dumps(docs_path)}",
        "test_split: test",
        "output_type: generate_until",
        "doc_to_messages: !function utils.doc_to_messages",
        "doc_to_visual: !function utils.doc_to_visual",
        "doc_to_text: !function utils.doc_to_text",
        "doc_to_target: !function utils.doc_to_target",
        "process_results: !function utils.process_results",
        "reasoning_tags: none",
        "generation_kwargs:",
        f"  max_new_tokens: {max_new_tokens}",
        "  temperature: 0",
        "  do_sample: false",
        "metric_list:",
        "  - metric: viubench_score",
        "    aggregation: !function utils.mean_score",
        "    higher_is_better: true",
        "cluster_key: video",
        "score_key: score",
        "metadata:",
        f"  version: {json.dumps(__version__)}",
        "",
    ])


def group_yaml(names: list[str]) -> str:
    return "\n".join([f"group: {GROUP}", "task:", *(f"  - {name}" for name in names),
                      "metadata:", f"  version: {json.dumps(__version__)}", ""])


def _write_docs(path: str, docs: list[dict[str, Any]]) -> None:
    _write_text(path, "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in docs))


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _clear_out(out: str) -> None:
    """The folder is new, empty, or an earlier lmms-eval export (whose files are removed)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise LmmsExportError(f"{out}: exists and is not a folder")
    if not os.path.isdir(out) or not os.listdir(out):
        return
    manifest = _earlier_manifest(out)
    for name in list(_earlier_files(out, manifest)):
        path = os.path.join(out, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)
    frames = os.path.join(out, MEDIA)
    extracted = manifest.get("frames") == MEDIA   # a packed set's frames, extracted here
    if extracted and os.path.isdir(frames) and not os.path.islink(frames):
        shutil.rmtree(frames)
    os.remove(os.path.join(out, MANIFEST))
    if os.path.isdir(os.path.join(out, DOCS)) and not os.listdir(os.path.join(out, DOCS)):
        os.rmdir(os.path.join(out, DOCS))
    left = sorted(os.listdir(out))
    if left:
        raise LmmsExportError(f"{out}: holds other files ({', '.join(left[:3])}); export into a"
                              " new or empty folder")


def _earlier_manifest(out: str) -> dict[str, Any]:
    """The manifest of an earlier lmms-eval export into `out`."""
    path = os.path.join(out, MANIFEST)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        raise LmmsExportError(f"{out}: holds files but no earlier lmms-eval export; export into"
                              " a new or empty folder") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise LmmsExportError(f"{path}: not an lmms-eval export's manifest")
    return manifest


def _earlier_files(out: str, manifest: dict[str, Any]) -> Iterator[str]:
    """The files an earlier lmms-eval export into `out` wrote (named in its `manifest`)."""
    path = os.path.join(out, MANIFEST)
    files = manifest.get("files")
    if not isinstance(files, list):
        raise LmmsExportError(f"{path}: not an lmms-eval export's manifest")
    for name in files:
        if (not isinstance(name, str) or os.path.isabs(name) or ".." in name.split("/")
                or name.count("/") > 1):
            raise LmmsExportError(f"{path}: names a file outside the folder ({str(name)[:80]!r})")
        yield name

"""`viubench import lmms-eval LOGDIR --testset T --out RUNDIR`: an lmms-eval run of an exported
task folder (`viubench.lmms_eval_task`), made with `--log_samples`, as a viubench run folder.

lmms-eval writes `LOGDIR/<model>/<date>_samples_<task>.jsonl` (one line per doc: its reply in
`filtered_resps`, the raw reply in `resps` where they differ, and what `process_results`
returned, here `viubench_score` with the sample id) and `<date>_results.json` (its settings).
The logs are read as untrusted input: a line that is not what such a run writes, a sample id
that is not in the test set, a log of another test set or a sample logged twice is one error
line naming the file and the reason, and nothing is written.

Each doc becomes one prediction record through `viubench.runfolder`, in test-set order. A reply
that is lmms-eval's failure text (`[LMMS_EVAL_REQUEST_FAILED ...]`, `[LMMS_EVAL_BUDGET_EXCEEDED]`)
or empty is recorded as an error (never as an answer), so it scores as an error does. Samples
of the exported scope that lmms-eval did not log (its own `--limit`) are left out: `viubench
score` counts them as missing. The run header names lmms-eval, its model and model arguments
(secrets hidden) and the log files with their hashes.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from .folderlock import exclusive
from .lmms_eval_utils import METRIC, failure_of, reply_of
from .records import append_jsonl, file_hash, read_json, read_jsonl
from .redaction import REDACTED, is_secret_name, redact_value
from .runfolder import (PREDICTIONS, make_header, prediction_record, read_header,
                        scope_record)
from .runner import GenerationSettings
from .testset import iter_samples, samples_path

SAMPLES_FILE = re.compile(r"^(?P<date>.+)_samples_(?P<task>[A-Za-z0-9_.-]+)\.jsonl$")
MAX_LOG_FILES = 10_000


class LmmsImportError(ValueError):
    """Logs that cannot be imported; the message names the file and the reason."""


@dataclass(frozen=True)
class LoggedReply:
    """One doc of an lmms-eval log: which sample, the reply, and where it was read."""

    sample_id: str
    task: str
    variant: str
    reply: Any
    scope: int | None
    testset: Any
    where: str
    doc_id: Any


def run_import_lmms_eval(args: argparse.Namespace) -> int:
    if not args.testset:
        raise LmmsImportError("import lmms-eval needs --testset (the set the task was exported"
                              " from)")
    counts = import_lmms_eval(args.source, args.testset, args.out)
    print(f"{args.out}: {counts['answered']} answers and {counts['errors']} errors from"
          f" lmms-eval ({counts['unlogged']} samples of the exported scope not logged)")
    print(f"score with: viubench score {args.out}")
    return 0


def import_lmms_eval(logdir: str, testset: str, rundir: str) -> dict[str, int]:
    """Write `rundir/predictions.jsonl` from lmms-eval's sample logs; returns counts."""
    files, results_file = sample_logs(logdir)
    replies = [reply for path in files for reply in read_log(path)]
    testset_hash = file_hash(samples_path(testset))
    by_id = _unique(replies)
    scopes = {reply.scope for reply in replies}
    if len(scopes) > 1:
        raise LmmsImportError(f"{logdir}: its docs come from exports of different scopes"
                              f" ({sorted(str(s) for s in scopes)})")
    scope = scopes.pop() if scopes else None
    samples = list(iter_samples(testset, scope))
    known = {sample["id"]: sample for sample in samples}
    for reply in by_id.values():
        _check_reply(reply, known, testset, testset_hash)
    config = read_results(results_file)
    header = make_header(testset, run_label(config), run_fingerprint(
        config, files, logdir), _generation(config).as_json())
    if header["testset"]["hash"] != testset_hash:
        raise LmmsImportError(f"{testset}: changed while it was read")
    os.makedirs(rundir, exist_ok=True)
    with exclusive(rundir, "import"):
        if read_header(rundir) is not None:
            raise LmmsImportError(f"{rundir}: holds a run already; import into a new folder")
        return _write(rundir, header, scope, samples, by_id)


def sample_logs(logdir: str) -> tuple[list[str], str | None]:
    """The `*_samples_*.jsonl` files of the newest run under `logdir` and its results file."""
    found = list(_walk(logdir))
    if not found:
        raise LmmsImportError(f"{logdir}: no lmms-eval sample logs (*_samples_<task>.jsonl);"
                              " run lmms-eval with --log_samples --output_path LOGDIR")
    runs = {(os.path.dirname(path), match["date"]) for path, match in found}
    if len({folder for folder, _ in runs}) > 1:
        raise LmmsImportError(f"{logdir}: holds the logs of several models"
                              f" ({', '.join(sorted({f for f, _ in runs})[:3])}); give one"
                              " model's folder")
    folder, date = max(runs)
    files = sorted(path for path, match in found if match["date"] == date)
    results = os.path.join(folder, f"{date}_results.json")
    return files, results if os.path.isfile(results) else None


def _walk(logdir: str) -> Iterator[tuple[str, re.Match]]:
    if not os.path.isdir(logdir):
        raise LmmsImportError(f"{logdir}: no such folder")
    count = 0
    for folder, subfolders, names in os.walk(logdir):
        subfolders.sort()
        for name in sorted(names):
            match = SAMPLES_FILE.match(name)
            if match:
                count += 1
                if count > MAX_LOG_FILES:
                    raise LmmsImportError(f"{logdir}: more than {MAX_LOG_FILES} sample logs")
                yield os.path.join(folder, name), match


def read_log(path: str) -> Iterator[LoggedReply]:
    """The docs of one sample log, each checked to be a doc of a viubench export."""
    try:
        for number, record in enumerate(read_jsonl(path, torn_ok=False), start=1):
            yield logged_reply(record, f"{path}:{number}")
    except OSError as error:
        raise LmmsImportError(f"{path}: cannot be read ({error.strerror or error})") from None


def logged_reply(record: Mapping[str, Any], where: str) -> LoggedReply:
    info = record.get(METRIC)
    if not isinstance(info, dict):
        raise LmmsImportError(f"{where}: no {METRIC} record (not a task exported by"
                              " `viubench export --format lmms-eval`)")
    fields: dict[str, str] = {}
    for name in ("sample_id", "task", "variant"):
        value = info.get(name)
        if not isinstance(value, str) or not value:
            raise LmmsImportError(f"{where}: {METRIC}.{name} missing or not a string")
        fields[name] = value
    if "filtered_resps" not in record and "resps" not in record:
        raise LmmsImportError(f"{where}: no reply (neither resps nor filtered_resps)")
    # `resps` is the reply as the model gave it; lmms-eval keeps it only where it differs
    raw = record["resps"] if "resps" in record else record["filtered_resps"]
    scope = info.get("scope")
    if scope is not None and (not isinstance(scope, int) or isinstance(scope, bool)
                              or scope < 0):
        raise LmmsImportError(f"{where}: {METRIC}.scope is not a sample count")
    return LoggedReply(fields["sample_id"], fields["task"], fields["variant"],
                       reply_of(raw if isinstance(raw, list) else [raw]), scope or None,
                       info.get("testset"), where,
                       record.get("doc_id"))


def _unique(replies: list[LoggedReply]) -> dict[str, LoggedReply]:
    by_id: dict[str, LoggedReply] = {}
    for reply in replies:
        if reply.sample_id in by_id:
            raise LmmsImportError(f"{reply.where}: sample {reply.sample_id} was logged before, at"
                                  f" {by_id[reply.sample_id].where}")
        by_id[reply.sample_id] = reply
    return by_id


def _check_reply(reply: LoggedReply, known: Mapping[str, Any], testset: str,
                 testset_hash: str) -> None:
    sample = known.get(reply.sample_id)
    if reply.testset != testset_hash:
        raise LmmsImportError(f"{reply.where}: logged from an export of another test set than"
                              f" {testset} (its samples.jsonl hash differs)")
    if sample is None:
        raise LmmsImportError(f"{reply.where}: sample {reply.sample_id[:80]} is not in the"
                              f" exported scope of {testset}")
    if (sample["task"], sample["variant"]) != (reply.task, reply.variant):
        raise LmmsImportError(f"{reply.where}: sample {reply.sample_id} is"
                              f" {sample['task']}:{sample['variant']} in {testset}, the log says"
                              f" {reply.task}:{reply.variant}")


def read_results(path: str | None) -> dict[str, Any]:
    """Model, model arguments (secrets hidden), version and generation settings of the run,
    from its `<date>_results.json` (all None where it is missing)."""
    config: dict[str, Any] = {"model": "unknown", "model_args": None, "lmms_eval_version": None,
                              "max_new_tokens": {}, "results_file": None}
    if path is None:
        return config
    try:
        results = read_json(path)
    except (OSError, ValueError) as error:
        raise LmmsImportError(f"{path}: not an lmms-eval results file ({error})") from None
    if not isinstance(results, dict):
        raise LmmsImportError(f"{path}: not an lmms-eval results file (not an object)")
    run = results.get("config")
    run = run if isinstance(run, dict) else {}
    config["model"] = str(run.get("model") or results.get("model_name") or "unknown")[:200]
    config["model_args"] = redact_args(run.get("model_args"))
    version = results.get("lmms_eval_version")
    config["lmms_eval_version"] = str(version)[:80] if version is not None else None
    config["max_new_tokens"] = _task_tokens(results.get("configs"))
    config["results_file"] = os.path.basename(path)
    return config


def run_label(config: Mapping[str, Any]) -> str:
    """`lmms-eval:MODEL[:NAME]`, NAME the model_version, pretrained or model argument."""
    args = config["model_args"] if isinstance(config["model_args"], str) else ""
    named = dict(item.partition("=")[::2] for item in args.split(",") if "=" in item)
    name = next((named[key] for key in ("model_version", "pretrained", "model")
                 if named.get(key)), None)
    return f"lmms-eval:{config['model']}" + (f":{name.strip()[:200]}" if name else "")


def redact_args(model_args: Any) -> Any:
    """lmms-eval's `key=value,...` model arguments with secrets hidden (by name or in URLs)."""
    if isinstance(model_args, dict):
        return {str(k): REDACTED if is_secret_name(str(k)) else redact_args(v)
                for k, v in model_args.items()}
    if not isinstance(model_args, str):
        return model_args
    if "=" not in model_args:
        return redact_value(model_args)
    pairs = []
    for item in model_args.split(","):
        name, sep, value = item.partition("=")
        hidden = REDACTED if sep and is_secret_name(name.strip()) else redact_value(value)
        pairs.append(f"{name}{sep}{hidden}" if sep else redact_value(item))
    return ",".join(pairs)


def _task_tokens(configs: Any) -> dict[str, int]:
    """max_new_tokens per lmms-eval task, from the results file's task configs."""
    tokens: dict[str, int] = {}
    for name, task in (configs.items() if isinstance(configs, dict) else []):
        kwargs = task.get("generation_kwargs") if isinstance(task, dict) else None
        value = kwargs.get("max_new_tokens") if isinstance(kwargs, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            tokens[str(name)] = value
    return tokens


def _generation(config: Mapping[str, Any]) -> GenerationSettings:
    values = set(config["max_new_tokens"].values())
    if len(values) == 1:
        return GenerationSettings(max_new_tokens=values.pop())
    return GenerationSettings()


def run_fingerprint(config: Mapping[str, Any], files: list[str], logdir: str) -> dict[str, Any]:
    return {"source": "lmms-eval", "model": config["model"], "model_args": config["model_args"],
            "lmms_eval_version": config["lmms_eval_version"],
            "max_new_tokens": config["max_new_tokens"], "results_file": config["results_file"],
            "logs": {os.path.relpath(path, logdir): file_hash(path) for path in files}}


def error_kind(reply: Any, error: str) -> str:
    """How a failed reply is recorded: a rate limit, a transient failure, or fatal."""
    if not isinstance(reply, str) or error.startswith("[LMMS_EVAL_BUDGET_EXCEEDED"):
        return "fatal"
    lowered = error.lower()
    return "rate_limit" if "429" in lowered or "rate limit" in lowered else "transient"


def attempts_of(error: str) -> int:
    found = re.match(r"\[LMMS_EVAL_REQUEST_FAILED after (\d{1,4}) retries\]", error)
    return int(found.group(1)) if found else 1


def _write(rundir: str, header: dict[str, Any], scope: int | None, samples: list[Any],
           by_id: Mapping[str, LoggedReply]) -> dict[str, int]:
    counts = {"answered": 0, "errors": 0, "unlogged": 0}
    with open(os.path.join(rundir, PREDICTIONS), "w", encoding="utf-8") as handle:
        append_jsonl(handle, header)
        append_jsonl(handle, scope_record(scope))
        for sample in samples:
            reply = by_id.get(sample["id"])
            if reply is None:
                counts["unlogged"] += 1
                continue
            error = failure_of(reply.reply)
            info = {"source": "lmms-eval", "log": reply.where, "doc_id": reply.doc_id}
            if error is None:
                record = prediction_record(sample["id"], sample["task"], sample["variant"],
                                           reply.reply, None, None, 1, 0.0, 0.0, info)
            else:
                record = prediction_record(sample["id"], sample["task"], sample["variant"],
                                           None, error, error_kind(reply.reply, error),
                                           attempts_of(error), 0.0, 0.0, info)
            append_jsonl(handle, record)
            counts["answered" if error is None else "errors"] += 1
    return counts

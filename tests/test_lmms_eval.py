"""lmms-eval: `viubench export --format lmms-eval` (task folder) and `viubench import lmms-eval`
(its sample logs as a run folder).

Fast tests need no lmms-eval: the exported YAML and utils.py load, `process_results` scores
scripted replies (right, wrong, unparseable, failed) exactly as `viubench score` scores the same
replies from a viubench run, and logs in lmms-eval's own layout import into a run folder with
failures recorded as errors. The slow test installs lmms-eval 0.7.3 in its own environment and
runs an exported task through lmms-eval's CLI against a chat server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import site
import subprocess
import sys
import time
import types
from typing import Any

import pytest
import yaml
from chat_server import ChatServer, server_error
from helpers import viubench

from viubench.lmms_eval_run import LmmsImportError, import_lmms_eval
from viubench.lmms_eval_task import MANIFEST, export_lmms_eval, task_name
from viubench.lmms_eval_utils import StoredFrame, doc_to_messages, video_line
from viubench.records import read_jsonl
from viubench.runfolder import read_run
from viubench.score import score_run
from viubench.testset import iter_samples

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAILED = "[LMMS_EVAL_REQUEST_FAILED after 1 retries] Error code: 500 - server error"


class _FunctionTag(yaml.SafeLoader):
    """A safe YAML loader that reads lmms-eval's `!function utils.x` tags as their names."""


_FunctionTag.add_constructor("!function", lambda loader, node: ("function", node.value))


def load_yaml(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_FunctionTag)  # noqa: S506 - a SafeLoader subclass


def load_utils(folder: str) -> types.ModuleType:
    """The exported utils.py, imported by its path (as lmms-eval's --include_path does)."""
    spec = importlib.util.spec_from_file_location(f"exported_utils_{id(folder)}",
                                                  os.path.join(folder, "utils.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scripted_replies(testset: str) -> dict[str, str]:
    """Sample id -> a reply: right, wrong (another sample's answer of the task, or nonsense),
    unparseable, in turn; the fourth sample's request failed (lmms-eval's failure text)."""
    samples = list(iter_samples(testset))
    replies = {}
    for number, sample in enumerate(samples):
        others = [s["answer"] for s in samples
                  if s["task"] == sample["task"] and s["answer"] != sample["answer"]]
        kinds = [sample["answer"], others[0] if others else "0", "I cannot tell."]
        replies[sample["id"]] = kinds[number % 3]
    replies[samples[3]["id"]] = FAILED
    return replies


def lmms_log_line(doc_id: int, doc: dict, reply: str, utils: types.ModuleType) -> dict:
    """One line of lmms-eval 0.7.3's `<date>_samples_<task>.jsonl` for a generate_until doc
    (EvaluationTracker.save_results_samples: `doc` and `arguments` dropped, `resps` dropped
    when equal to `filtered_resps`, single replies unwrapped, the process_results dict merged)."""
    line = {"doc_id": doc_id, "target": doc["answer"], "filtered_resps": reply,
            "token_counts": [None], "doc_hash": hashlib.sha256(
                json.dumps(doc).encode()).hexdigest(), "input": ""}
    line.update(utils.process_results(doc, [reply]))
    return line


def write_logs(export: str, logdir: str, replies: dict[str, str],
               date: str = "20261204_120000") -> dict[str, float]:
    """Logs of a run giving `replies`, in lmms-eval's layout; returns each lmms-eval task's
    aggregate (its `mean_score`) as lmms-eval would report it."""
    utils = load_utils(export)
    manifest = json.load(open(os.path.join(export, MANIFEST)))
    model_dir = os.path.join(logdir, "m")
    os.makedirs(model_dir, exist_ok=True)
    aggregates = {}
    for name in manifest["tasks"]:
        docs = list(read_jsonl(os.path.join(export, "docs", f"{name}.jsonl")))
        lines = [lmms_log_line(i, doc, replies[doc["sample_id"]], utils)
                 for i, doc in enumerate(docs)]
        with open(os.path.join(model_dir, f"{date}_samples_{name}.jsonl"), "w") as handle:
            handle.writelines(json.dumps(line) + "\n" for line in lines)
        aggregates[name] = utils.mean_score([line["viubench_score"] for line in lines])
    results = {"results": {}, "config": {"model": "openai", "model_args":
               "model_version=m,base_url=http://127.0.0.1:1/v1,api_key=sk-secret"},
               "configs": {name: {"generation_kwargs": {"max_new_tokens": 256}}
                           for name in manifest["tasks"]},
               "lmms_eval_version": "0.7.3"}
    with open(os.path.join(model_dir, f"{date}_results.json"), "w") as handle:
        json.dump(results, handle)
    return aggregates


@pytest.fixture(scope="module")
def exported(viubench_testset, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("lmms") / "export")
    export_lmms_eval(viubench_testset, out)
    return out


def test_export_folder_loads(viubench_testset, exported):
    samples = list(iter_samples(viubench_testset))
    manifest = json.load(open(os.path.join(exported, MANIFEST)))
    group = load_yaml(os.path.join(exported, "viubench_all.yaml"))
    assert group["group"] == "viubench_all" and sorted(group["task"]) == sorted(manifest["tasks"])
    utils = load_utils(exported)
    for name, key in manifest["tasks"].items():
        task, variant = key.split(":")
        config = load_yaml(os.path.join(exported, f"{name}.yaml"))
        assert config["task"] == name == task_name(task, variant)
        assert config["dataset_path"] == "json" and config["output_type"] == "generate_until"
        assert config["cluster_key"] == "video" and config["reasoning_tags"] == "none"
        for field in ("doc_to_messages", "doc_to_visual", "doc_to_text", "process_results"):
            kind, function = config[field]
            assert kind == "function" and callable(getattr(utils, function.split(".")[1]))
        assert config["metric_list"][0]["aggregation"] == ("function", "utils.mean_score")
        docs = list(read_jsonl(config["dataset_kwargs"]["data_files"]["test"]))
        expected = [s for s in samples if (s["task"], s["variant"]) == (task, variant)]
        assert [d["sample_id"] for d in docs] == [s["id"] for s in expected]
        assert [d["video"] for d in docs] == [s["video"]["hash"] for s in expected]
        assert all(isinstance(v, (str, int)) for d in docs for v in d.values())
    assert sum(manifest["docs"].values()) == len(samples) == 36


def test_messages_keep_prompt_order_and_stored_jpeg_bytes(viubench_testset, exported):
    sample = next(iter_samples(viubench_testset))
    name = task_name(sample["task"], sample["variant"])
    doc = next(read_jsonl(os.path.join(exported, "docs", f"{name}.jsonl")))
    messages = doc_to_messages(doc)
    assert messages[0] == {"role": "system", "content": [{"type": "text",
                                                          "text": sample["system"]}]}
    content = messages[1]["content"]
    expected: list[tuple[str, Any]] = []
    for part in sample["prompt"]:
        if part["type"] == "text":
            expected.append(("text", part["text"]))
        elif part["type"] == "video":
            expected.append(("text", video_line(part)))
            expected += [("image", path) for path in part["frames"]]
        else:
            expected.append(("image", part["image"]))
    got = [("text", c["text"]) if c["type"] == "text" else ("image", c["url"]) for c in content]
    assert [kind for kind, _ in got] == [kind for kind, _ in expected]
    for (kind, value), (_, want) in zip(got, expected):
        if kind == "text":
            assert value == want
            continue
        stored = open(os.path.join(viubench_testset, want), "rb").read()
        assert isinstance(value, StoredFrame)
        jpeg, png = _saved(value, "JPEG"), _saved(value, "PNG")
        assert jpeg == stored                    # sent as stored, not re-encoded
        assert png.startswith(b"\x89PNG")        # other formats: a real encode


def _saved(image: Any, fmt: str) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_process_results_and_import_equal_viubench_score(viubench_testset, exported, tmp_path):
    replies = scripted_replies(viubench_testset)
    # viubench's own run of the same replies (the scripted adapter), scored by `viubench eval`
    replies_file = tmp_path / "replies.json"
    replies_file.write_text(json.dumps({i: {"error": r, "kind": "transient"}
                                        if r == FAILED else r for i, r in replies.items()}))
    done = viubench("eval", "--testset", viubench_testset, "--model",
                    f"scripted:{replies_file}", "--out", str(tmp_path / "own"),
                    "--max-attempts", "1", "--max-error-rate", "1")
    assert done.returncode == 0, done.stderr
    own = json.load(open(tmp_path / "own" / "results.json"))
    aggregates = write_logs(exported, str(tmp_path / "logs"), replies)
    manifest = json.load(open(os.path.join(exported, MANIFEST)))
    for name, key in manifest["tasks"].items():
        assert aggregates[name] == own["variants"][key]["score"], key
    assert any(0 < row["score"] < 100 for row in own["variants"].values())

    counts = import_lmms_eval(str(tmp_path / "logs"), viubench_testset, str(tmp_path / "run"))
    assert counts == {"answered": 35, "errors": 1, "unlogged": 0}
    imported = score_run(str(tmp_path / "run"))
    for key, row in own["variants"].items():
        mine = imported["variants"][key]
        assert mine["score"] == row["score"], key
        assert (mine["parse_failures"], mine["errors"]) == (row["parse_failures"], row["errors"])
    assert imported["totals"]["errors"] == 1 and imported["totals"]["parse_failures"] > 0
    header, records = read_run(str(tmp_path / "run"))
    assert header is not None and header["adapter"]["spec"] == "lmms-eval:openai:m"
    fingerprint = header["adapter"]["fingerprint"]
    assert fingerprint["source"] == "lmms-eval" and "sk-secret" not in json.dumps(header)
    assert "api_key=<redacted>" in fingerprint["model_args"]
    failed = [r for r in records if r.get("record") == "prediction" and r["error"]]
    assert len(failed) == 1 and failed[0]["text"] is None
    assert failed[0]["error"] == FAILED and failed[0]["kind"] == "transient"


def test_import_cli_then_score_and_leaderboard(viubench_testset, exported, tmp_path):
    replies = scripted_replies(viubench_testset)
    replies[next(iter(replies))] = ""   # an empty reply is an error too
    write_logs(exported, str(tmp_path / "logs"), replies)
    run = str(tmp_path / "run")
    done = viubench("import", "lmms-eval", str(tmp_path / "logs"), "--testset",
                    viubench_testset, "--out", run)
    assert done.returncode == 0, done.stderr
    assert "34 answers and 2 errors" in done.stdout
    scored = viubench("score", run)
    assert scored.returncode == 0, scored.stderr
    board = viubench("leaderboard", run, "--out", str(tmp_path / "board.csv"))
    assert board.returncode == 0, board.stderr
    assert "lmms-eval:openai:m" in (tmp_path / "board.csv").read_text()
    again = viubench("import", "lmms-eval", str(tmp_path / "logs"), "--testset",
                     viubench_testset, "--out", run)
    assert again.returncode != 0 and "holds a run already" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_export_cli_and_reexport(viubench_testset, tmp_path):
    out = str(tmp_path / "export")
    for _ in range(2):   # an earlier export is replaced
        done = viubench("export", viubench_testset, "--format", "lmms-eval", "--out", out,
                        "--limit", "5")
        assert done.returncode == 0, done.stderr
        assert "5 docs in" in done.stdout and "--include_path" in done.stdout
    wrong = viubench("export", viubench_testset, "--format", "lmms-eval", "--out", out,
                     "--reward-policy", "strict")
    assert wrong.returncode != 0 and "does not apply" in wrong.stderr
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = viubench("export", viubench_testset, "--format", "lmms-eval", "--out",
                       str(tmp_path / "other"))
    assert refused.returncode != 0 and "new or empty folder" in refused.stderr
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def _rewrite(path: str, change) -> None:
    lines = [json.loads(line) for line in open(path)]
    change(lines)
    with open(path, "w") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in lines)


@pytest.mark.parametrize("damage, message", [
    ("no_metric", "no viubench_score record"),
    ("unknown_id", "is not in the exported scope"),
    ("duplicate", "was logged before"),
    ("torn", "cut off"),
    ("not_json", "not a JSON record"),
    ("other_set", "another test set"),
])
def test_import_refuses_bad_logs(viubench_testset, exported, tmp_path, damage, message):
    replies = scripted_replies(viubench_testset)
    logs = str(tmp_path / "logs")
    write_logs(exported, logs, replies)
    folder = os.path.join(logs, "m")
    path = os.path.join(folder, sorted(n for n in os.listdir(folder) if "_samples_" in n)[0])
    if damage == "no_metric":
        _rewrite(path, lambda lines: lines[0].pop("viubench_score"))
    elif damage == "unknown_id":
        _rewrite(path, lambda lines: lines[0]["viubench_score"].update(sample_id="f" * 16))
    elif damage == "duplicate":
        _rewrite(path, lambda lines: lines.append(lines[0]))
    elif damage == "other_set":
        _rewrite(path, lambda lines: lines[0]["viubench_score"].update(testset="0" * 32))
    else:
        with open(path, "a") as handle:
            handle.write('{"doc_id": 9' if damage == "torn" else "garbage\n")
    with pytest.raises(LmmsImportError if damage not in ("torn", "not_json") else ValueError,
                       match=message) as raised:
        import_lmms_eval(logs, viubench_testset, str(tmp_path / "run"))
    assert path in str(raised.value)
    assert not os.path.exists(tmp_path / "run" / "predictions.jsonl")


def test_import_without_logs_is_one_line(viubench_testset, tmp_path):
    (tmp_path / "empty").mkdir()
    done = viubench("import", "lmms-eval", str(tmp_path / "empty"), "--testset",
                    viubench_testset, "--out", str(tmp_path / "run"))
    assert done.returncode != 0 and "no lmms-eval sample logs" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ slow: lmms-eval itself

LMMS_EVAL = "lmms-eval==0.7.3"


def lmms_env(root: str) -> str:
    """A virtual environment with lmms-eval 0.7.3 that also sees this one's packages (viubench,
    torch CPU) through a .pth file; made once per `root` (VIUBENCH_LMMS_ENV keeps it between
    runs). lmms-eval's fixes: no torchvision (PyPI's build breaks transformers on CPU torch),
    filelock<4 (it imports filelock's private _api)."""
    python = os.path.join(root, "bin", "python")
    ready = os.path.join(root, ".viubench-ready")
    if os.path.exists(ready):
        return python
    subprocess.run([sys.executable, "-m", "venv", root], check=True)
    own = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    # an `import` line of a .pth file runs: addsitedir also runs the .pth files there
    # (viubench's editable install)
    with open(os.path.join(own, "viubench_base.pth"), "w") as handle:
        handle.writelines(f"import site; site.addsitedir({path!r})\n"
                          for path in site.getsitepackages())
    installed = subprocess.run(
        [python, "-m", "pip", "install", "-q", "-c", os.path.join(REPO, "constraints.txt"),
         LMMS_EVAL, "filelock<4"], capture_output=True, text=True, timeout=1800)
    if installed.returncode != 0:
        tail = (installed.stderr or installed.stdout).strip().splitlines()[-3:]
        pytest.skip(f"pip could not install {LMMS_EVAL}: {' | '.join(tail)}")
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "torchvision"], check=True)
    open(ready, "w").close()
    return python


class FrameServer(ChatServer):
    """Answers each request with the scripted reply of the sample it shows (known by its text
    and first frame); one sample's requests always get a 500."""

    def __init__(self, by_key: dict[str, str], failing: str, **kwargs: Any) -> None:
        super().__init__(answer=self._reply, **kwargs)
        self.by_key, self.failing = by_key, failing

    def _reply(self, body: dict) -> str:
        return self.by_key[request_key(body)]

    def _begin(self, path, headers, body, size):
        reply, seen = super()._begin(path, headers, body, size)
        if body is not None and request_key(body) == self.failing:
            return server_error(500), seen
        return reply, seen


def request_key(body: dict) -> str:
    """What identifies a sample in a request: its texts and the bytes of all its images."""
    parts = [p for m in body["messages"] for p in m["content"]]
    texts = [p["text"] for p in parts if p["type"] == "text"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    return json.dumps([texts, hashlib.sha256("\n".join(images).encode()).hexdigest()])


def sample_key(sample: dict, root: str) -> str:
    """The key of the request that sends `sample` with its frames as stored (JPEG bytes)."""
    texts = [sample["system"]] if sample.get("system") else []
    images = []
    for part in sample["prompt"]:
        if part["type"] == "text":
            texts.append(part["text"])
        elif part["type"] == "video":
            texts.append(video_line(part))
        for path in part.get("frames") or [part.get("image")] * (part["type"] == "image"):
            data = base64.b64encode(open(os.path.join(root, path), "rb").read()).decode()
            images.append(f"data:image/jpeg;base64,{data}")
    return json.dumps([texts, hashlib.sha256("\n".join(images).encode()).hexdigest()])


@pytest.mark.slow
def test_lmms_eval_runs_export_and_scores_equal(viubench_testset, tmp_path_factory):
    started = time.monotonic()
    work = tmp_path_factory.mktemp("lmms_slow")
    python = lmms_env(os.environ.get("VIUBENCH_LMMS_ENV") or str(work / "env"))
    export = str(work / "export")
    export_lmms_eval(viubench_testset, export)
    samples = list(iter_samples(viubench_testset))
    replies = scripted_replies(viubench_testset)
    replies.pop(samples[3]["id"])            # this one fails at the server instead
    by_key = {sample_key(s, viubench_testset): replies.get(s["id"], "") for s in samples}
    assert len(by_key) == len(samples)        # every request names its sample
    failing = sample_key(samples[3], viubench_testset)
    env = dict(os.environ, LMMS_IMAGE_ENCODE_FORMAT="JPEG", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", HF_HOME=str(work / "hf"), OPENAI_API_KEY="EMPTY")
    with FrameServer(by_key, failing, lifetime=900) as server:
        ran = subprocess.run(
            [python, "-m", "lmms_eval", "--model", "openai", "--model_args",
             f"model_version=viubench-test,base_url={server.url},max_retries=1,"
             "retry_backoff_s=0,num_concurrent=4", "--tasks", "viubench_all", "--include_path",
             export, "--batch_size", "1", "--log_samples", "--output_path",
             str(work / "logs")], capture_output=True, text=True, env=env, timeout=1200)
    # lmms-eval exits 0 even when a task cannot be loaded: its results file is the proof
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0 and "Error during evaluation" not in output, output[-3000:]
    sent = [request_key(r.body) for r in server.received if r.body is not None]
    assert failing in sent and set(sent) == set(by_key)   # every frame went as stored
    results_files = [os.path.join(folder, name) for folder, _, names in os.walk(work / "logs")
                     for name in names if name.endswith("_results.json")]
    assert len(results_files) == 1
    lmms_results = json.load(open(results_files[0]))["results"]
    run = str(work / "run")
    counts = import_lmms_eval(str(work / "logs"), viubench_testset, run)
    assert counts == {"answered": 35, "errors": 1, "unlogged": 0}
    ours = score_run(run)
    manifest = json.load(open(os.path.join(export, MANIFEST)))
    for name, key in manifest["tasks"].items():
        assert lmms_results[name]["viubench_score,none"] == pytest.approx(
            ours["variants"][key]["score"], abs=1e-9), key
    assert any(0 < row["score"] < 100 for row in ours["variants"].values())
    _, records = read_run(run)
    failed = [r for r in records if r.get("record") == "prediction" and r["error"]]
    assert [r["id"] for r in failed] == [samples[3]["id"]]
    assert failed[0]["error"].startswith("[LMMS_EVAL_REQUEST_FAILED")
    assert failed[0]["text"] is None
    print(f"lmms-eval slow test: {time.monotonic() - started:.0f} s")

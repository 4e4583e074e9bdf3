"""The `hf` adapter on tiny random checkpoints of four families, loaded by path.

Random weights answer garbage; these tests check the plumbing: every sample gets text, the video
path is recorded, batching does not change greedy answers, the frames reach the model, and the
fingerprint tells checkpoints apart.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import os

import pytest

from tiny_models import SAVERS, save_qwen2_vl
from viubench.adapters import AdapterAbort, Request, parse_spec
from viubench.runfolder import read_run
from viubench.runner import GenerationSettings, RunOptions, requests_of, run_eval

pytest.importorskip("transformers")
FAMILIES = sorted(SAVERS)
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
# Without torchvision transformers 5 cannot build any video processor, so `auto` means frames.
EXPECTED_VIDEO_INPUT = "video" if HAS_TORCHVISION else "frames"
FIRST_VIDEO = 9        # the first 9 samples cover the three tasks (one video's worth)
MAX_FRAMES = "3"       # per clip: keeps the 48-frame clips a few hundred tokens long


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny_checkpoints")
    return {family: save(str(root / family)) for family, save in SAVERS.items()}


@pytest.fixture(scope="module")
def adapters(checkpoints):
    from viubench.model_adapters.transformers_local import TransformersLocal

    return {family: TransformersLocal(path, max_frames=MAX_FRAMES)
            for family, path in checkpoints.items()}


def predictions_of(rundir: str) -> tuple[dict, list[dict]]:
    """A run folder's header and its prediction records (other record kinds left out)."""
    header, records = read_run(rundir)
    return header, [r for r in records if r.get("record") == "prediction"]


def some_requests(testset: str, count: int = FIRST_VIDEO) -> list[Request]:
    return list(requests_of(testset, GenerationSettings(max_new_tokens=6), count))


@pytest.mark.parametrize("family", FAMILIES)
def test_run_eval_answers_every_sample(family, adapters, checkpoints, viubench_testset,
                                       tmp_path):
    adapter = adapters[family]
    spec = parse_spec(f"hf:{checkpoints[family]} max_frames={MAX_FRAMES}")
    counts = run_eval(viubench_testset, spec, adapter, str(tmp_path / "run"),
                      GenerationSettings(max_new_tokens=8), RunOptions(limit=FIRST_VIDEO))
    assert counts == {"answered": FIRST_VIDEO, "errors": 0}
    header, predictions = predictions_of(str(tmp_path / "run"))
    assert header["adapter"]["fingerprint"] == json.loads(json.dumps(adapter.describe()))
    assert {p["task"] for p in predictions} == {"anomaly_grounding", "object_counting",
                                                "temporal_jigsaw"}
    for record in predictions:
        assert record["error"] is None and isinstance(record["text"], str)
        assert record["info"]["video_input"] == EXPECTED_VIDEO_INPUT
        assert record["info"]["frames"] >= 3 and record["info"]["prompt_tokens"] > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_answers_equal_one_by_one(family, adapters, viubench_testset):
    adapter = adapters[family]
    # Prompts of different lengths (1 clip vs 6-8 clips) force left padding; two token limits
    # in one batch exercise the grouping by max_new_tokens.
    chosen = some_requests(viubench_testset)[4:9]
    chosen[1] = dataclasses.replace(chosen[1], max_new_tokens=3)
    together = adapter.generate(chosen)
    alone = [adapter.generate([request])[0] for request in chosen]
    assert [r.text for r in together] == [r.text for r in alone]
    assert all(r.ok for r in together)
    assert together[1].text == alone[1].text and together[0].info == alone[0].info


@pytest.mark.parametrize("family", FAMILIES)
def test_frames_reach_the_model(family, adapters, viubench_testset):
    import torch

    adapter = adapters[family]
    jigsaw = some_requests(viubench_testset)[7]          # 6 clips of 8 frames
    prompt = adapter.prompt(jigsaw)
    assert prompt.frames == 6 * 3                        # max_frames=3 per clip
    inputs = adapter.encode([prompt])
    ids = inputs["input_ids"][0]
    processor = adapter.processor
    if adapter.video_input == "frames":
        placeholders = int((ids == processor.image_token_id).sum())
        if "image_grid_thw" in inputs:      # Qwen: one grid per frame, merge_size^2 patches each
            assert len(inputs["image_grid_thw"]) == prompt.frames
            merge = processor.image_processor.merge_size ** 2
            assert placeholders == int(inputs["image_grid_thw"].prod(dim=1).sum()) // merge
        else:                               # LLaVA-OneVision: one base tile (+newline) per frame
            assert inputs["pixel_values"].shape[0] == prompt.frames
            assert placeholders == prompt.frames * (processor.num_image_tokens + 1)
    else:
        assert int((ids == processor.video_token_id).sum()) > 0
    # The pixels change the next-token logits: the frames are really used.
    key = "pixel_values" if "pixel_values" in inputs else "pixel_values_videos"
    inputs = inputs.to(adapter.model.device)
    with torch.inference_mode():
        logits = adapter.model(**inputs).logits[0, -1]
        inputs[key] = torch.zeros_like(inputs[key])
        blank = adapter.model(**inputs).logits[0, -1]
    assert not torch.allclose(logits, blank)


def test_video_mode_prompt_keeps_clip_timing(adapters, viubench_testset):
    """The `video` path's inputs, built without torchvision: one clip array per video part,
    with the chosen frame indices and the clip's fps for timestamping models."""
    adapter = copy.copy(adapters["qwen3_vl"])
    adapter.video_input = "video"
    jigsaw = some_requests(viubench_testset)[7]
    prompt = adapter.prompt(jigsaw)
    clips = [part for part in jigsaw.parts if part["type"] == "video"]
    assert len(prompt.videos) == len(clips) == 6 and not prompt.images
    assert all(video.shape[0] == 3 and video.shape[-1] == 3 for video in prompt.videos)
    assert [m.frames_indices for m in prompt.metadata] == [[0, 4, 7]] * 6
    assert prompt.metadata[0].fps == pytest.approx(clips[0]["fps"])
    system, user = prompt.messages
    assert system == {"role": "system", "content": [{"type": "text", "text": jigsaw.system}]}
    kinds = [item["type"] for item in user["content"]]
    assert kinds.count("video") == 6 and "image" not in kinds


@pytest.mark.skipif(not HAS_TORCHVISION, reason="transformers' video processors need torchvision")
@pytest.mark.parametrize("family", FAMILIES)
def test_native_video_input(family, checkpoints, viubench_testset):
    from viubench.model_adapters.transformers_local import TransformersLocal

    adapter = TransformersLocal(checkpoints[family], video="video", max_frames="4")
    request = some_requests(viubench_testset)[0]
    inputs = adapter.encode([adapter.prompt(request)])
    assert int((inputs["input_ids"] == adapter.processor.video_token_id).sum()) > 0
    answer = adapter.generate([request])[0]
    assert answer.ok and answer.info["video_input"] == "video"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not HAS_TORCHVISION or not _has_cuda(),
                    reason="needs a CUDA GPU and torchvision (transformers' video processors)")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("video", ["video", "frames"])
def test_cuda_bfloat16_run(family, video, checkpoints, viubench_testset, tmp_path):
    """On a GPU, in bfloat16, both video paths answer every sample of one video and the run
    header says where and how the model ran."""
    from viubench.model_adapters.transformers_local import TransformersLocal

    adapter = TransformersLocal(checkpoints[family], dtype="bfloat16", device="cuda",
                                video=video, max_frames="4")
    spec = parse_spec(f"hf:{checkpoints[family]} dtype=bfloat16 device=cuda video={video}")
    counts = run_eval(viubench_testset, spec, adapter, str(tmp_path / "run"),
                      GenerationSettings(max_new_tokens=6), RunOptions(limit=FIRST_VIDEO))
    assert counts == {"answered": FIRST_VIDEO, "errors": 0}
    header, predictions = predictions_of(str(tmp_path / "run"))
    described = header["adapter"]["fingerprint"]
    assert described["device"].startswith("cuda") and described["dtype"] == "bfloat16"
    assert described["video_input"] == video
    assert all(p["info"]["video_input"] == video for p in predictions)
    if video == "video":
        request = some_requests(viubench_testset)[7]          # 6 clips
        inputs = adapter.encode([adapter.prompt(request)])
        assert "pixel_values_videos" in inputs
        assert int((inputs["input_ids"] == adapter.processor.video_token_id).sum()) > 0
    adapter.close()


def test_fingerprint_is_stable_and_tells_checkpoints_apart(adapters, checkpoints, tmp_path):
    from viubench.model_adapters.transformers_local import TransformersLocal

    first = adapters["qwen2_vl"].describe()
    again = TransformersLocal(checkpoints["qwen2_vl"], max_frames=MAX_FRAMES).describe()
    assert first == again and json.loads(json.dumps(first)) == first
    assert first["model_class"] == "Qwen2VLForConditionalGeneration"
    assert first["model_type"] == "qwen2_vl" and first["video_input"] == EXPECTED_VIDEO_INPUT
    assert first["checkpoint"] == os.path.abspath(checkpoints["qwen2_vl"])
    # Same architecture and file sizes, other weights: only the weight bytes differ.
    reseeded = TransformersLocal(save_qwen2_vl(str(tmp_path / "seed1"), seed=1),
                                 max_frames=MAX_FRAMES).describe()
    assert reseeded["checkpoint_sha256"] != first["checkpoint_sha256"]
    others = {adapters[f].describe()["checkpoint_sha256"] for f in FAMILIES}
    assert len(others) == len(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_no_hub_kernels_are_swapped_in(family, adapters):
    """transformers 5 kernelizes by default (on a GPU it fetches kernels from the Hub, which
    fails offline); the adapter loads the checkpoint's own layers only."""
    assert adapters[family].model.use_kernels is False


def test_unreadable_media_fails_only_that_request(adapters, viubench_testset):
    good, other = some_requests(viubench_testset, 2)
    broken_part = {"type": "image", "image": "/nonexistent/frame.jpg"}
    broken = dataclasses.replace(other, parts=(*other.parts, broken_part))
    answers = adapters["qwen2_vl"].generate([good, broken])
    assert answers[0].ok and answers[1].kind == "fatal"
    assert "/nonexistent/frame.jpg" in answers[1].error


def test_bad_checkpoint_and_options_are_refused(tmp_path, checkpoints):
    from viubench.model_adapters.transformers_local import TransformersLocal

    missing = str(tmp_path / "no_such_model")
    with pytest.raises(AdapterAbort, match="no_such_model"):
        TransformersLocal(missing)
    empty = tmp_path / "broken"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(AdapterAbort, match="broken"):
        TransformersLocal(str(empty))
    with pytest.raises(ValueError, match="dtype"):
        TransformersLocal(checkpoints["qwen2_vl"], dtype="float8")
    if not HAS_TORCHVISION:   # asking for native video must not silently become frames
        with pytest.raises(ValueError, match="torchvision"):
            TransformersLocal(checkpoints["qwen2_vl"], video="video")


def test_eval_command_end_to_end(checkpoints, viubench_testset, tmp_path):
    from viubench.cli import main

    rundir = str(tmp_path / "cli_run")
    status = main(["eval", "--testset", viubench_testset,
                   "--model", f"hf:{checkpoints['qwen2_5_vl']} max_frames=2 batch_size=3",
                   "--out", rundir, "--limit", str(FIRST_VIDEO), "--max-new-tokens", "4"])
    assert status == 0
    header, predictions = predictions_of(rundir)
    assert header["adapter"]["fingerprint"]["model_type"] == "qwen2_5_vl"
    assert len(predictions) == FIRST_VIDEO and all(p["error"] is None for p in predictions)
    assert os.path.exists(os.path.join(rundir, "results.json"))

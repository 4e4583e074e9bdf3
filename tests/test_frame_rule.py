"""One frame-subsampling rule for every adapter: the same `max_frames` shows the same frames,
whether a request goes to an OpenAI-compatible server, a transformers checkpoint or vLLM.

Each adapter's request builder runs on the test set's real requests; what it would send is
compared, frame by frame, with the frames the rule names (bytes for the API, pixels for the
local backends). The vLLM builder needs no vLLM (it only reads JPEGs).
"""

from __future__ import annotations

import base64
import copy
import json

import numpy as np
import pytest
from PIL import Image

from viubench.adapters import FRAME_RULE, Request, frame_indices, frame_policy, shown_clip
from viubench.runner import GenerationSettings, requests_of

LIMITS = [1, 3, 5, 7, None]


def test_rule_keeps_the_ends_and_spreads_evenly():
    assert frame_indices(48, None) == list(range(48))
    assert frame_indices(48, 60) == list(range(48))
    assert frame_indices(48, 4) == [0, 16, 31, 47]       # 15.67 -> 16, 31.33 -> 31
    assert frame_indices(8, 3) == [0, 4, 7]              # 3.5 rounds up
    assert frame_indices(48, 1) == [23]                  # the middle frame
    for count in range(1, 40):
        for limit in range(1, count + 1):
            picked = frame_indices(count, limit)
            assert len(picked) == limit and picked == sorted(set(picked))
            if limit > 1:
                assert picked[0] == 0 and picked[-1] == count - 1
                gaps = np.diff(picked)
                assert gaps.max() - gaps.min() <= 1


def test_policy_names_the_rule():
    assert frame_policy(4) == {"frame_rule": FRAME_RULE, "max_frames": 4}


@pytest.fixture(scope="module")
def video_requests(viubench_testset) -> list[Request]:
    """Requests holding video parts: anomaly grounding's one long clip, jigsaw's six short."""
    requests = list(requests_of(viubench_testset, GenerationSettings(max_new_tokens=4), 9))
    return [r for r in requests if any(p["type"] == "video" for p in r.parts)]


def expected_paths(request: Request, limit: int | None) -> list[str]:
    paths: list[str] = []
    for part in request.parts:
        if part["type"] == "video":
            frames = list(part["frames"])
            paths += [frames[i] for i in frame_indices(len(frames), limit)]
    return paths


def pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def only_video(request: Request) -> Request:
    """The request with its image parts dropped: what is left is text and video parts."""
    kept = tuple(p for p in request.parts if p["type"] != "image")
    return Request(request.id, request.task, request.variant, kept, request.max_new_tokens)


@pytest.mark.parametrize("limit", LIMITS)
def test_openai_sends_the_rule_frames(video_requests, limit):
    pytest.importorskip("openai", reason="the openai adapter needs the api extra")
    from viubench.model_adapters.openai_api import OpenAIAdapter

    adapter = OpenAIAdapter("m", base_url="http://127.0.0.1:9/v1", api_key="k",
                            max_frames="" if limit is None else str(limit))
    try:
        for request in map(only_video, video_requests):
            body, sent = adapter.body(request)
            parts = json.loads(body)["messages"][-1]["content"]
            urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
            got = [base64.b64decode(url.partition(",")[2]) for url in urls]
            want = expected_paths(request, limit)
            assert sent == len(want)
            assert got == [open(path, "rb").read() for path in want]
    finally:
        adapter.close()


@pytest.mark.parametrize("limit", LIMITS)
def test_vllm_builder_shows_the_rule_frames(video_requests, limit):
    from viubench.model_adapters.vllm_engine import video_inputs

    for request in video_requests:
        want = expected_paths(request, limit)
        images: list = []
        clips: list = []
        for part in request.parts:
            if part["type"] == "video":
                images += video_inputs(part, "frames", limit)[1]["image"]
                clips += video_inputs(part, "video", limit)[1]["video"]
        assert len(images) == len(want)
        assert all(np.array_equal(np.asarray(i), pixels(p)) for i, p in zip(images, want))
        stacked = np.concatenate([array for array, _ in clips])
        assert np.array_equal(stacked, np.stack([pixels(p) for p in want]))
        videos = [p for p in request.parts if p["type"] == "video"]
        for (_, meta), part in zip(clips, videos):
            assert meta["frames_indices"] == frame_indices(len(part["frames"]), limit)
            assert meta["total_num_frames"] == len(part["frames"])


@pytest.fixture(scope="module")
def hf_adapter(tmp_path_factory):
    pytest.importorskip("transformers", reason="the hf adapter needs the hf extra")
    from tiny_models import save_qwen2_vl
    from viubench.model_adapters.transformers_local import TransformersLocal

    path = save_qwen2_vl(str(tmp_path_factory.mktemp("frame_rule") / "qwen2-vl"))
    adapter = TransformersLocal(path, video="frames")
    yield adapter
    adapter.close()


@pytest.mark.parametrize("limit", LIMITS)
def test_hf_shows_the_rule_frames(hf_adapter, video_requests, limit):
    as_frames = copy.copy(hf_adapter)
    as_frames.max_frames = limit
    as_video = copy.copy(as_frames)
    as_video.video_input = "video"     # the inputs are built without torchvision
    for request in map(only_video, video_requests):
        want = expected_paths(request, limit)
        images = as_frames.prompt(request).images
        assert len(images) == len(want)
        assert all(np.array_equal(np.asarray(i), pixels(p)) for i, p in zip(images, want))
        prompt = as_video.prompt(request)
        assert np.array_equal(np.concatenate(prompt.videos), np.stack([pixels(p) for p in want]))
        videos = [p for p in request.parts if p["type"] == "video"]
        assert [m.frames_indices for m in prompt.metadata] == \
            [frame_indices(len(part["frames"]), limit) for part in videos]


def test_shown_fps_scales_with_the_frames_kept():
    part = {"type": "video", "frames": [f"{i}.jpg" for i in range(48)], "fps": 8.0}
    clip = shown_clip(part, 12)
    assert clip.total == 48 and len(clip.paths) == 12 and clip.shown_fps == pytest.approx(2.0)

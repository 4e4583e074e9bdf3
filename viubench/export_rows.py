"""One sample as the row each trainer reads (`viubench export`; the writing is in
`viubench.export`).

* verl: `prompt` chat messages whose text holds one `<video>` / `<image>` placeholder per
  entry of `videos` / `images`; a video entry is the dict verl hands to qwen-vl-utils'
  `fetch_video` (`video`: frame paths, `sample_fps`: the sample's own frame rate, `min_pixels`,
  `max_pixels`); `data_source` routes the reward (`viubench/TASK/VARIANT`), `reward_model`
  holds the answer, `extra_info` the sample id and reward policy.
* EasyR1: `prompt` is one text; an EasyR1 row takes images or videos, never both, and a video
  given as frames is read at 2 fps whatever its rate, so every video goes as its frames, one
  `<image>` each, after a line stating its frame count and fps; `answer` is the JSON
  `easyr1_ground_truth` makes (task, variant, answer, policy).
* TRL: conversational `prompt` with one `{"type": "image"}` part per entry of `images` (TRL has
  no video column), each video as its frames after the same line; `task`, `variant`, `answer`,
  `reward_policy` columns reach `viubench.rewards.trl_reward`.

Frame paths are absolute paths into the test set's own media (checked by
`viubench.testset.iter_samples` to lie inside it), or, for a packed set, to the frames
`viubench.export` extracted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from viubench.rewards import data_source, easyr1_ground_truth
from viubench.testset import BadTestSet, SampleRecord

PLACEHOLDERS = ("<video>", "<image>")


@dataclass
class Media:
    """A sample's prompt as segments: text, an image, or a video (frames and fps), in order."""

    segments: list[tuple[str, Any]] = field(default_factory=list)
    pixel_bounds: tuple[int, int] = (0, 0)

    def videos(self) -> list[tuple[list[str], float]]:
        return [value for kind, value in self.segments if kind == "video"]

    def images(self) -> list[str]:
        return [value for kind, value in self.segments if kind == "image"]


def sample_media(sample: SampleRecord, file_of: Callable[[str], str], where: str) -> Media:
    """The prompt of a checked sample, each media path turned into an absolute file path by
    `file_of` (`SetMedia.path`). Refuses text holding a placeholder (it would shift every
    medium after it)."""
    media = Media(pixel_bounds=_pixel_bounds(sample, where))
    for part in sample["prompt"]:
        if part["type"] == "text":
            text = str(part.get("text", ""))
            if any(mark in text for mark in PLACEHOLDERS):
                raise BadTestSet(f"{where}: prompt text holds a literal <video> or <image>")
            media.segments.append(("text", text))
        elif part["type"] == "image":
            media.segments.append(("image", file_of(part["image"])))
        else:
            media.segments.append(("video", (_frame_paths(part, file_of, where),
                                             _fps(part, where))))
    return media


def _frame_paths(part: dict[str, Any], file_of: Callable[[str], str],
                 where: str) -> list[str]:
    frames = part.get("frames")
    if not isinstance(frames, list) or not frames:
        raise BadTestSet(f"{where}: a video part without frames")
    return [file_of(rel) for rel in frames]


def _fps(part: dict[str, Any], where: str) -> float:
    fps = part.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < 1000:
        raise BadTestSet(f"{where}: a video part without a frame rate (fps {fps!r})")
    return float(fps)


def _pixel_bounds(sample: SampleRecord, where: str) -> tuple[int, int]:
    bounds = sample["frames"].get("pixel_bounds")
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
            or not 0 < bounds[0] <= bounds[1]):
        raise BadTestSet(f"{where}: frames.pixel_bounds missing or not [min, max] areas")
    return bounds[0], bounds[1]


def video_line(frames: int, fps: float) -> str:
    """What a video turned into images says first (the wording the openai adapter sends)."""
    return f"(video, {frames} frames at {fps:.3g} fps)"


def _system(sample: SampleRecord) -> str | None:
    system = sample.get("system")
    return system if isinstance(system, str) and system else None


# --- verl ---------------------------------------------------------------------------------


def verl_row(sample: SampleRecord, media: Media, index: int,
             policy: str | None) -> dict[str, Any]:
    low, high = media.pixel_bounds
    pieces = []
    for kind, value in media.segments:
        pieces.append(value if kind == "text" else f"<{kind}>")
    messages = ([{"role": "system", "content": system}] if (system := _system(sample)) else [])
    messages.append({"role": "user", "content": "\n".join(pieces)})
    return {
        "data_source": data_source(sample["task"], sample["variant"]),
        "prompt": messages,
        "videos": [{"video": frames, "sample_fps": fps, "min_pixels": low, "max_pixels": high}
                   for frames, fps in media.videos()],
        "images": [{"image": path} for path in media.images()],
        "ability": "video",
        "reward_model": {"style": "rule", "ground_truth": sample["answer"]},
        "extra_info": {"index": index, "id": sample["id"], "task": sample["task"],
                       "variant": sample["variant"], "reward_policy": policy},
    }


# --- frames as images (EasyR1, TRL) --------------------------------------------------------


def _as_images(media: Media) -> tuple[list[tuple[str, str]], list[str]]:
    """Segments with every video turned into its line and its frames: ("text", str) and
    ("image", path) items, and the image paths in order."""
    items: list[tuple[str, str]] = []
    for kind, value in media.segments:
        if kind == "video":
            frames, fps = value
            items.append(("text", video_line(len(frames), fps)))
            items.extend(("image", path) for path in frames)
        else:
            items.append((kind, value))
    return items, [value for kind, value in items if kind == "image"]


def _common(sample: SampleRecord, media: Media, policy: str | None) -> dict[str, Any]:
    return {"id": sample["id"], "task": sample["task"], "variant": sample["variant"],
            "reward_policy": policy,
            "video_fps": [fps for _, fps in media.videos()],
            "video_frames": [len(frames) for frames, _ in media.videos()]}


def easyr1_row(sample: SampleRecord, media: Media, index: int,
               policy: str | None) -> dict[str, Any]:
    items, images = _as_images(media)
    lines: list[str] = []
    for number, (kind, value) in enumerate(items):
        if kind == "image" and number and items[number - 1][0] == "image":
            lines[-1] += "<image>"
        else:
            lines.append("<image>" if kind == "image" else value)
    system = _system(sample)
    return {"prompt": "\n".join(([system, ""] if system else []) + lines),
            "answer": easyr1_ground_truth(sample["task"], sample["variant"], sample["answer"],
                                          policy),
            "images": images,
            "data_source": data_source(sample["task"], sample["variant"]),
            **_common(sample, media, policy)}


def trl_row(sample: SampleRecord, media: Media, index: int,
            policy: str | None) -> dict[str, Any]:
    items, images = _as_images(media)
    content = [{"type": "text", "text": value} if kind == "text" else {"type": "image",
                                                                        "text": None}
               for kind, value in items]
    messages: list[dict[str, Any]] = []
    if system := _system(sample):
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": content})
    return {"prompt": messages, "images": images, "answer": sample["answer"],
            **_common(sample, media, policy)}


ROW_MAKERS = {"verl": verl_row, "easyr1": easyr1_row, "trl": trl_row}


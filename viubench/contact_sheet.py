"""One sample of a built test set as a single picture: its video frames, then its labelled
images, then the answer. Used for the MVP figure of docs/tasks.md; works for any task's sample."""

from __future__ import annotations

import os
from typing import Any, Mapping

from PIL import Image, ImageDraw, ImageFont

from .media import decode_frame
from .testset import SetMedia, iter_samples

THUMB_WIDTH, PER_ROW, PAD, LINE = 136, 8, 6, 14


def contact_sheet(testset: str, sample_id: str, out_png: str, show_answer: bool = True) -> str:
    """Write `out_png` showing sample `sample_id` of `testset`; returns the path."""
    sample = _find(testset, sample_id)
    rows: list[tuple[str, list[tuple[str, str]]]] = []   # (heading, [(caption, media path)])
    label = ""
    images: list[tuple[str, str]] = []
    for part in sample["prompt"]:
        if part["type"] == "video":
            frames = [(f"{i + 1}", path) for i, path in enumerate(part["frames"])]
            rows.append((f"video, {len(frames)} frames (gap frames are striped)", frames))
        elif part["type"] == "image":
            images.append((label or f"image {len(images) + 1}", part["image"]))
        else:
            label = part["text"].rstrip(":") if len(part["text"]) < 24 else ""
    if images:
        rows.append(("candidates", images))
    with SetMedia(testset) as media:
        picture = _draw(media, sample, rows, show_answer)
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    picture.save(out_png, optimize=True)
    return out_png


def _find(testset: str, sample_id: str) -> Mapping[str, Any]:
    for sample in iter_samples(testset):
        if sample["id"] == sample_id:
            return sample
    raise KeyError(f"no sample {sample_id} in {testset}")


def _draw(media: SetMedia, sample: Mapping[str, Any], rows,
          show_answer: bool) -> Image.Image:
    w, h = sample["frames"]["size"]
    thumb = (THUMB_WIDTH, round(THUMB_WIDTH * h / w))
    cell_w, cell_h = thumb[0] + PAD, thumb[1] + LINE + PAD
    answer = sample["answer"].split(",")
    body = sum(LINE + -(-len(cells) // PER_ROW) * cell_h + LINE // 2 for _, cells in rows)
    height = PAD + LINE * 2 + body + (LINE + 2 * PAD if show_answer else 0)
    sheet = Image.new("RGB", (PAD + PER_ROW * cell_w, height), "white")
    pen = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    pen.text((PAD, PAD), f"{sample['task']}:{sample['variant']}  (sample {sample['id']})",
             fill="black", font=font)
    y = PAD + LINE * 2
    for heading, cells in rows:
        pen.text((PAD, y), heading, fill="black", font=font)
        y += LINE
        for i, (caption, path) in enumerate(cells):
            x = PAD + (i % PER_ROW) * cell_w
            top = y + (i // PER_ROW) * cell_h
            image = Image.fromarray(decode_frame(media.read(path))).resize(thumb)
            sheet.paste(image, (x, top + LINE))
            number = caption.split()[-1]
            hit = show_answer and heading == "candidates" and number in answer
            pen.text((x, top), caption + (f"  <- hidden #{answer.index(number) + 1}" if hit
                                          else ""), fill="darkgreen" if hit else "black",
                     font=font)
            if hit:
                pen.rectangle((x - 2, top + LINE - 2, x + thumb[0] + 1, top + LINE + thumb[1] + 1),
                              outline="green", width=3)
        y += -(-len(cells) // PER_ROW) * cell_h + LINE // 2
    if show_answer:
        pen.text((PAD, y + PAD), f"answer: {sample['answer']}", fill="black", font=font)
    return sheet

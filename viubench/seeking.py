"""Seek-when-far decoding: reach sparse frames of a long video without decoding every frame.

The demux pass that counts a video's frames (`video.probe`) also notes every frame's
presentation timestamp and which frames are keyframes (`FrameIndex`). To decode sorted target
frames, `seek_plan` walks them in order: when the last keyframe at or before the next target
lies beyond the frame decoded last, the decoder seeks to that keyframe (GOP-aware: everything
between is skipped), else it decodes on. The plan is used only when it seeks at least once and
decodes at most SEEK_WORTH of the frames a decode of every frame would; otherwise (dense
sampling, MVP's 1 fps on short GOPs, a clip of one GOP) the video is decoded from the start,
which also stops at the last frame needed when the timestamps place every frame.

Decoding from a keyframe gives the same pixels as decoding from the start (tested against
decode-all on H.264 with B-frames and open GOPs, HEVC, VP9, AV1, MPEG-4, MJPEG and VFR clips).
A target is identified by its timestamp, so a frame that does not come out where its timestamp
says (a leading frame of an open GOP the seek cannot reach, a stream whose timestamps lie)
is a `SeekMiss`, and the caller decodes every frame instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class FrameIndex:
    """Where a video's frames lie, from the demux pass: every frame's presentation timestamp
    in presentation order, and the positions (in that order) of the keyframes."""

    pts: tuple[int, ...]
    keys: tuple[int, ...]

    @classmethod
    def from_packets(cls, packets: Sequence[tuple[int | None, bool]]) -> "FrameIndex | None":
        """From (pts, keyframe) of every packet holding data; None when the timestamps cannot
        place each frame (a packet without one, or two packets sharing one)."""
        timed = [(pts, key) for pts, key in packets if pts is not None]
        if not packets or len(timed) != len(packets):
            return None
        ordered = sorted(timed)
        pts = tuple(int(p) for p, _ in ordered)
        if len(set(pts)) != len(pts):
            return None
        keys = tuple(i for i, (_, key) in enumerate(ordered) if key)
        if not keys or keys[0] != 0:
            return None
        return cls(pts, keys)

    def places(self, frame_count: int) -> bool:
        """Whether the index places each of the video's `frame_count` frames (it may not after
        decoding found another count than the demuxer)."""
        return len(self.pts) == frame_count

    def key_before(self, index: int) -> int:
        """The last keyframe at or before frame `index` (presentation order)."""
        low, high = 0, len(self.keys) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self.keys[middle] <= index:
                low = middle
            else:
                high = middle - 1
        return self.keys[low]


STRATEGIES = ("all", "seek")   # how PyAV reached the frames (recorded per sample when "seek")
SEEK_COST = 8          # a seek and a decoder flush, in frames decoded (for the plan only)
SEEK_WORTH = 0.8       # seek only when it decodes at most this share of decode-all's frames


def seek_plan(index: FrameIndex | None, targets: Sequence[int], frame_count: int,
              always: bool = False) -> list[int] | None:
    """The keyframe to seek to before each target (-1: decode on from the last target), or
    None when there is no usable index or, unless `always`, when decoding every frame is
    about as cheap (dense sampling; short GOPs' seek overhead)."""
    if index is None or not index.places(frame_count):
        return None
    plan, decoded, position = [], 0, -1
    for target in targets:
        key = index.key_before(target)
        if key > position + 1:
            plan.append(key)
            decoded += target - key + 1 + SEEK_COST
        else:
            plan.append(-1)
            decoded += target - position
        position = target
    if not always and (decoded > SEEK_WORTH * frame_count or max(plan) < 0):
        return None      # decoding from the start (to the last frame needed) is as cheap
    return plan


class SeekMiss(Exception):
    """A target frame did not come out where its timestamp said (the caller decodes all)."""


def decode_seeking(container, stream, index: FrameIndex, targets: Sequence[int],
                   plan: Sequence[int], take) -> None:
    """Decode the `targets` (sorted) following `plan`; `take(slot, frame)` gets each one.
    SeekMiss when a target is not found between its keyframe and the next later frame."""
    wanted = {index.pts[t]: slot for slot, t in enumerate(targets)}
    frames = None
    floor = None
    for slot, (target, key) in enumerate(zip(targets, plan)):
        if key >= 0:
            container.seek(index.pts[key], stream=stream, backward=True, any_frame=False)
            frames, floor = container.decode(stream), index.pts[key]
        elif frames is None:               # the first target lies in the first GOP
            frames, floor = container.decode(stream), index.pts[0]
        goal = index.pts[target]
        for frame in frames:
            if frame.pts is None:
                raise SeekMiss("a frame without a timestamp")
            if frame.pts < floor:
                continue                      # a leading frame of an open GOP: not ours
            if frame.pts > goal:
                raise SeekMiss(f"frame {target} was not decoded where expected")
            if frame.pts in wanted and wanted[frame.pts] <= slot:
                take(wanted[frame.pts], frame)
            if frame.pts == goal:
                break
        else:
            raise SeekMiss(f"the stream ended before frame {target}")

"""Training checkpoints as a trainer writes them, for the `viubench watch` tests (no torch
needed except for `tiny_qwen_checkpoint`)."""

from __future__ import annotations

import json
import os
import struct


def safetensors_bytes(tensors: dict[str, int]) -> bytes:
    """A valid safetensors file of float32 tensors named -> element count (zeros)."""
    header, offset = {}, 0
    for name, count in tensors.items():
        header[name] = {"dtype": "F32", "shape": [count], "data_offsets": [offset,
                                                                           offset + 4 * count]}
        offset += 4 * count
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)     # the format pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text + bytes(offset)


def write_trainer_state(folder: str, step: int) -> None:
    """trainer_state.json, the file the Trainer writes last into a checkpoint."""
    with open(os.path.join(folder, "trainer_state.json"), "w") as handle:
        json.dump({"global_step": step, "log_history": [{"step": step, "loss": 1.0}]}, handle)


def fake_checkpoint(folder: str, step: int, weights: bytes | None = None) -> str:
    """checkpoint-<step> with a config, a whole model.safetensors and trainer_state.json."""
    path = os.path.join(folder, f"checkpoint-{step}")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as handle:
        json.dump({"model_type": "fake"}, handle)
    with open(os.path.join(path, "model.safetensors"), "wb") as handle:
        handle.write(weights if weights is not None else safetensors_bytes({"w": 16, "b": 4}))
    write_trainer_state(path, step)
    return path


def half_written_checkpoint(folder: str, step: int) -> str:
    """checkpoint-<step> as a trainer killed while saving leaves it: config, a cut-off
    model.safetensors, no trainer_state.json."""
    path = os.path.join(folder, f"checkpoint-{step}")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as handle:
        json.dump({"model_type": "fake"}, handle)
    whole = safetensors_bytes({"w": 1024})
    with open(os.path.join(path, "model.safetensors"), "wb") as handle:
        handle.write(whole[:len(whole) // 2])
    return path


def tiny_qwen_checkpoint(folder: str, step: int) -> str:
    """checkpoint-<step> holding a tiny random Qwen2-VL (`tiny_models.save_qwen2_vl`, seeded by
    the step), written in place as the Trainer does: weights first, trainer_state.json last."""
    from tiny_models import save_qwen2_vl

    path = os.path.join(folder, f"checkpoint-{step}")
    save_qwen2_vl(path, seed=step)
    write_trainer_state(path, step)
    return path

"""Reading .safetensors files tensor by tensor with numpy, for the real tier's assertions: the
wrapper's venv has no torch, and comparing a 7–12 GB checkpoint must not hold it in memory."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "BF16": np.uint16, "I64": np.int64, "I32": np.int32}


@dataclass
class TensorFile:
    path: Path
    header: dict = field(repr=False)
    data_start: int = 0

    @classmethod
    def open(cls, path: Path) -> "TensorFile":
        with open(path, "rb") as handle:
            size = struct.unpack("<Q", handle.read(8))[0]
            header = json.loads(handle.read(size))
        return cls(Path(path), header, 8 + size)

    @property
    def metadata(self) -> dict[str, str]:
        return self.header.get("__metadata__", {})

    def names(self) -> list[str]:
        return sorted(k for k in self.header if k != "__metadata__")

    def dtype(self, name: str) -> str:
        return self.header[name]["dtype"]

    def shape(self, name: str) -> list[int]:
        return self.header[name]["shape"]

    def read(self, name: str) -> np.ndarray:
        """The tensor as float32 (bf16 widened exactly), in its shape."""
        entry = self.header[name]
        start, end = entry["data_offsets"]
        with open(self.path, "rb") as handle:
            handle.seek(self.data_start + start)
            raw = handle.read(end - start)
        values = np.frombuffer(raw, dtype=_DTYPES[entry["dtype"]])
        if entry["dtype"] == "BF16":
            values = (values.astype(np.uint32) << 16).view(np.float32)
        return values.astype(np.float32).reshape(entry["shape"])


@dataclass
class Change:
    """How a group of tensors differs between two files, element by element."""

    elements: int = 0
    changed: int = 0
    max_abs: float = 0.0
    tensors: int = 0

    @property
    def fraction(self) -> float:
        return self.changed / self.elements if self.elements else 0.0


def compare(before: Path, after: Path, group) -> dict[str, Change]:
    """Per group (``group(name)`` → a label, or None to skip), how many elements differ."""
    a, b = TensorFile.open(before), TensorFile.open(after)
    missing = set(a.names()) ^ set(b.names())
    assert not missing, f"tensor sets differ between {before} and {after}: {sorted(missing)[:5]}"
    out: dict[str, Change] = {}
    for name in a.names():
        label = group(name)
        if label is None:
            continue
        x, y = a.read(name), b.read(name)
        change = out.setdefault(label, Change())
        change.tensors += 1
        change.elements += x.size
        differs = x != y
        change.changed += int(differs.sum())
        if x.size:
            change.max_abs = max(change.max_abs, float(np.abs(x - y).max()))
    return out


def part_of_sdxl(name: str) -> str:
    """sd-scripts' single-file SDXL layout: U-Net, text encoder 1 and 2, VAE."""
    if name.startswith("model.diffusion_model."):
        return "unet"
    if name.startswith("conditioner.embedders.0."):
        return "text_encoder_1"
    if name.startswith("conditioner.embedders.1."):
        return "text_encoder_2"
    if name.startswith("first_stage_model."):
        return "vae"
    return "other"

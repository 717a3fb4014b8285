"""Is this file a complete safetensors model of the kind a stage produces? (issue: a run counts only
if the expected file exists and parses, with the expected tensors — facts §0.9: sd-scripts exits 0
without a model on an empty dataset).

The header is parsed by hand and checked against the file (every tensor's byte range inside the
data section, sized for its dtype and shape, ranges covering the data section exactly), so a
truncated or half-written file is caught without loading a tensor or importing numpy/torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from swimlatent_wrap.errors import UserError

_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit

# What sd-scripts writes at the pinned commit (sdxl_model_util.save_stable_diffusion_checkpoint:
# U-Net, both text encoders and the VAE under these prefixes; networks.lora: lora_unet_/lora_te*
# modules, each with lora_down/lora_up weights and an alpha).
CHECKPOINT_PREFIXES = ("model.diffusion_model.", "conditioner.embedders.0.", "conditioner.embedders.1.", "first_stage_model.")


@dataclass(frozen=True)
class Safetensors:
    path: Path
    size: int
    header_bytes: int
    tensors: dict[str, tuple[str, list[int]]] = field(repr=False)
    metadata: dict[str, str] = field(repr=False)


class NotSafetensors(ValueError):
    """The file is missing, truncated or not in the safetensors format; the message says how."""


def read_safetensors(path: Path) -> Safetensors:
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise NotSafetensors(f"{size} bytes: too short for a safetensors header")
            (length,) = struct.unpack("<Q", prefix)
            if length > _MAX_HEADER or 8 + length > size:
                raise NotSafetensors(f"header length {length} does not fit the file ({size} bytes): truncated or not safetensors")
            raw = handle.read(length)
    except FileNotFoundError:
        raise NotSafetensors("file not found") from None
    except IsADirectoryError:
        raise NotSafetensors("is a folder, not a file") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotSafetensors(f"header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise NotSafetensors("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise NotSafetensors("__metadata__ must map strings to strings")
    data_size = size - 8 - length
    tensors: dict[str, tuple[str, list[int]]] = {}
    ranges = []
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise NotSafetensors(f"tensor {name!r}: malformed entry") from None
        if dtype not in _DTYPE_BYTES or not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise NotSafetensors(f"tensor {name!r}: bad dtype or shape ({dtype}, {shape})")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= data_size):
            raise NotSafetensors(f"tensor {name!r}: bytes {start}..{end} outside the data section ({data_size} bytes): truncated")
        if end - start != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise NotSafetensors(f"tensor {name!r}: {end - start} bytes for {dtype}{shape}")
        tensors[name] = (dtype, shape)
        ranges.append((start, end))
    position = 0
    for start, end in sorted(ranges):
        if start != position:
            raise NotSafetensors("tensor data has gaps or overlaps")
        position = end
    if position != data_size:
        raise NotSafetensors(f"data section is {data_size} bytes but the tensors cover {position}")
    return Safetensors(path=path, size=size, header_bytes=8 + length, tensors=tensors, metadata=metadata)


def tensor_problem(info: Safetensors, script: str, network_module: str | None = None) -> str | None:
    """None when the tensors are what ``script`` saves, else what is missing."""
    names = list(info.tensors)
    if not names:
        return "holds no tensors"
    if script == "sdxl_train":
        missing = [p for p in CHECKPOINT_PREFIXES if not any(n.startswith(p) for n in names)]
        if missing:
            return f"not a full SDXL checkpoint: no {', '.join(m + '*' for m in missing)} tensors"
        return None
    if script == "sdxl_train_network" and (network_module or "networks.lora") == "networks.lora":
        downs = {n[: -len(".lora_down.weight")] for n in names if n.endswith(".lora_down.weight")}
        ups = {n[: -len(".lora_up.weight")] for n in names if n.endswith(".lora_up.weight")}
        if not downs:
            return "not a LoRA: no *.lora_down.weight tensors"
        if downs != ups:
            return f"LoRA modules without both lora_down and lora_up weights, e.g. {sorted(downs ^ ups)[0]}"
        if not all(n.startswith(("lora_unet_", "lora_te")) for n in downs):
            return "LoRA module names are not lora_unet_*/lora_te*"
    return None


def verify_model(path: Path, script: str, *, network_module: str | None = None, what: str = "output") -> Safetensors:
    """The parsed header of ``path``, or one UserError saying why it is not a usable model."""
    try:
        info = read_safetensors(path)
    except NotSafetensors as error:
        raise UserError(f"{what} {path}: {error}") from None
    problem = tensor_problem(info, script, network_module)
    if problem:
        raise UserError(f"{what} {path}: {problem}")
    return info


def sha256_file(path: Path, chunk: int = 8 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def file_identity(path: Path) -> dict:
    """Size and modification time: how a placed model is recognised again without re-hashing it."""
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

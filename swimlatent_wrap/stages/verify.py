"""Is this file a complete safetensors model of the kind a stage produces? (issue: a run counts only
if the expected file exists and parses, with the expected tensors — facts §0.9: sd-scripts exits 0
without a model on an empty dataset).

The header is parsed by hand (``swimlatent_wrap.modelspec.safetensors_file``) and checked against
the file (every tensor's byte range inside the data section, sized for its dtype and shape, ranges
covering the data section exactly), so a truncated or half-written file is caught without loading
a tensor or importing numpy/torch.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.modelspec.safetensors_file import (
    NotSafetensors,
    Safetensors,
    read_safetensors,
)

# What sd-scripts writes at the pinned commit (sdxl_model_util.save_stable_diffusion_checkpoint:
# U-Net, both text encoders and the VAE under these prefixes; networks.lora: lora_unet_/lora_te*
# modules, each with lora_down/lora_up weights and an alpha).
CHECKPOINT_PREFIXES = ("model.diffusion_model.", "conditioner.embedders.0.", "conditioner.embedders.1.", "first_stage_model.")


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


def file_identity(path: Path) -> dict[str, int]:
    """Size and modification time: how a placed model is recognised again without re-hashing it."""
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

"""Real safetensors files for the release tests: SDXL-shaped (tiny) checkpoints and LoRAs, written
with the safetensors package, and raw files with hand-made headers for the malformed cases."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

# Real SDXL checkpoint key names (U-Net, both text encoders, VAE), tiny shapes.
UNET_LAYERS = {
    "input_blocks.4.1.proj_in": (8, 8),
    "input_blocks.4.1.transformer_blocks.0.attn1.to_q": (8, 8),
    "input_blocks.4.1.transformer_blocks.0.attn1.to_k": (8, 8),
    "middle_block.1.transformer_blocks.0.ff.net.0.proj": (16, 8),
    "output_blocks.2.1.conv": (8, 8, 3, 3),
    "out.2": (4, 8, 3, 3),  # not targeted by the LoRA
}
OTHER = {
    "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": (8,),
    "conditioner.embedders.1.model.ln_final.weight": (8,),
    "first_stage_model.decoder.conv_in.weight": (4, 4, 3, 3),
    "model.diffusion_model.input_blocks.4.1.proj_in.bias": (8,),
}


def checkpoint(path: Path, dtype=np.float32, metadata: dict | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors = {f"model.diffusion_model.{k}.weight": rng.standard_normal(s).astype(dtype) for k, s in UNET_LAYERS.items()}
    tensors.update({k: rng.standard_normal(s).astype(dtype) for k, s in OTHER.items()})
    save_file(tensors, str(path), metadata=metadata)
    return tensors


def lora(path: Path, layers=None, dim: int = 4, alpha: float = 2.0, seed: int = 1, metadata: dict | None = None) -> list[str]:
    """A LoRA for ``layers`` (default: every U-Net layer but out.2); returns the module names."""
    rng = np.random.default_rng(seed)
    layers = layers or [k for k in UNET_LAYERS if k != "out.2"]
    tensors, names = {}, []
    for layer in layers:
        shape = UNET_LAYERS[layer]
        name = "lora_unet_" + layer.replace(".", "_")
        down_shape = (dim, shape[1], *shape[2:]) if len(shape) == 4 else (dim, shape[1])
        up_shape = (shape[0], dim, 1, 1) if len(shape) == 4 else (shape[0], dim)
        tensors[name + ".lora_down.weight"] = rng.standard_normal(down_shape).astype(np.float32)
        tensors[name + ".lora_up.weight"] = rng.standard_normal(up_shape).astype(np.float32)
        tensors[name + ".alpha"] = np.array(alpha, dtype=np.float32)
        names.append(name)
    save_file(tensors, str(path), metadata=metadata or {"ss_base_model_version": "sdxl_base_v1-0"})
    return names


def raw(path: Path, header: dict | bytes, data: bytes = b"", length: int | None = None) -> Path:
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body) if length is None else length) + body + data)
    return path


def data_section(path: Path) -> bytes:
    blob = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    return blob[8 + n:]


def spec_hash(path: Path) -> str:
    """ModelSpec's reference hash, computed independently: 0x + sha256 of the bytes after the header."""
    return "0x" + hashlib.sha256(data_section(path)).hexdigest()


def header(path: Path) -> dict:
    blob = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n])

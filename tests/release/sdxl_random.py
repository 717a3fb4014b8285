"""A random-weight SDXL checkpoint with sd-scripts' real key layout, and a LoRA for it, streamed to disk.

Run with a Python that has sd-scripts' requirements, from the sd-scripts checkout, with networks/ on
sys.path:  python sdxl_random.py BASE_OUT [LORA_OUT]   (about 7 GB + 30 MB; peak RSS under 1 GB)

The weights are N(0, 0.02) rounded so that every value is exact in fp16 AND bf16 (bf16-rounded, then
values below fp16's smallest normal flushed to 0). sd-scripts casts the frozen text encoders to the
bf16 compute dtype and saves in fp16 or the training dtype; with values exact in both, a frozen
tensor comes back bit-for-bit equal, so the real tier can tell trained tensors from frozen ones
exactly.

Keys and shapes come from sd-scripts' own model classes built on the meta device and its own
conversion functions (what save_stable_diffusion_checkpoint writes); the LoRA's module names come
from the same walk over target classes as sdxl_merge_lora.merge_to_sd_model. Used by
test_contract_merge.py.
"""

import json
import math
import struct
import sys

import numpy as np
import torch
from accelerate import init_empty_weights
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
from library import sdxl_model_util, sdxl_original_unet, model_util
from diffusers import AutoencoderKL

import lora as lora_mod  # networks/ on sys.path

out_base = sys.argv[1]
out_lora = sys.argv[2] if len(sys.argv) > 2 else None

def te_cfg(hidden, inter, layers, heads, act):
    return CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, max_position_embeddings=77, hidden_act=act, layer_norm_eps=1e-05, dropout=0.0,
        attention_dropout=0.0, initializer_range=0.02, initializer_factor=1.0, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, model_type="clip_text_model", projection_dim=hidden if hidden == 1280 else 768)

with init_empty_weights():
    unet = sdxl_original_unet.SdxlUNet2DConditionModel()
    te1 = CLIPTextModel._from_config(te_cfg(768, 3072, 12, 12, "quick_gelu"))
    te2 = CLIPTextModelWithProjection(te_cfg(1280, 5120, 32, 20, "gelu"))
    vae = AutoencoderKL(**model_util.create_vae_diffusers_config())

shapes = {}
for k, v in unet.state_dict().items():
    shapes["model.diffusion_model." + k] = list(v.shape)
for k, v in te1.state_dict().items():
    shapes["conditioner.embedders.0.transformer." + k] = list(v.shape)
te2_sd = sdxl_model_util.convert_text_encoder_2_state_dict_to_sdxl(te2.state_dict(), torch.empty((), device="meta"))
for k, v in te2_sd.items():
    shapes["conditioner.embedders.1.model." + k] = list(v.shape)
for k, v in model_util.convert_vae_state_dict(vae.state_dict()).items():
    shapes["first_stage_model." + k] = list(v.shape)

def stream(path, shapes, make, metadata=None):
    names = sorted(shapes)
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for n in names:
        size = math.prod(shapes[n]) * 2
        header[n] = {"dtype": "F16", "shape": shapes[n], "data_offsets": [offset, offset + size]}
        offset += size
    body = json.dumps(header).encode()
    body += b" " * (-(8 + len(body)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(body)) + body)
        for n in names:
            f.write(make(n, shapes[n]).astype(np.float16).tobytes())

def exact_in_fp16_and_bf16(values: np.ndarray) -> np.ndarray:
    bits = np.atleast_1d(np.asarray(values, dtype=np.float32)).view(np.uint32)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)  # round to nearest even bf16
    out = bits.view(np.float32)
    out = np.where(np.abs(out) < 2.0 ** -14, np.float32(0.0), out)  # fp16 subnormals cannot hold every bf16 value
    return out.reshape(np.shape(values))


rng = np.random.default_rng(0)
stream(out_base, shapes, lambda n, s: exact_in_fp16_and_bf16(rng.standard_normal(s, dtype=np.float32) * 0.02))
print("base:", len(shapes), "tensors")
if out_lora is None:
    sys.exit(0)

# The LoRA: sd-scripts' own module naming (merge_to_sd_model's name_to_module), U-Net attention/FF
# linears, some ResnetBlock2D convs (3x3 and 1x1), every te1/te2 attention and MLP linear, and one
# module that names no layer (sd-scripts logs "no module found" and skips it).
modules = {}
for i, root in enumerate([te1, te2, unet]):
    if i <= 1:
        prefix = "lora_te1" if i == 0 else "lora_te2"
        targets = lora_mod.LoRANetwork.TEXT_ENCODER_TARGET_REPLACE_MODULE
    else:
        prefix = "lora_unet"
        targets = lora_mod.LoRANetwork.UNET_TARGET_REPLACE_MODULE + lora_mod.LoRANetwork.UNET_TARGET_REPLACE_MODULE_CONV2D_3X3
    for name, module in root.named_modules():
        if module.__class__.__name__ in targets:
            for child_name, child in module.named_modules():
                if child.__class__.__name__ in ("Linear", "Conv2d"):
                    modules[(prefix + "." + name + "." + child_name).replace(".", "_")] = child
selected = [m for m in modules if not m.startswith("lora_unet")]
unet_mods = [m for m in modules if m.startswith("lora_unet")]
selected += [m for m in unet_mods if "transformer_blocks" in m or "proj_" in m]
convs = [m for m in unet_mods if m not in selected]
selected += convs[::9]  # a sample of ResnetBlock2D / down/upsample convs
lora_shapes, dim = {}, 4
for m in selected:
    w = modules[m].weight
    if w.dim() == 2:
        lora_shapes[m + ".lora_down.weight"] = [dim, w.shape[1]]
        lora_shapes[m + ".lora_up.weight"] = [w.shape[0], dim]
    else:
        k = w.shape[2]
        lora_shapes[m + ".lora_down.weight"] = [dim, w.shape[1], k, k]
        lora_shapes[m + ".lora_up.weight"] = [w.shape[0], dim, 1, 1]
    lora_shapes[m + ".alpha"] = []
lora_shapes["lora_unet_not_a_layer.lora_down.weight"] = [dim, 8]
lora_shapes["lora_unet_not_a_layer.lora_up.weight"] = [8, dim]
lora_shapes["lora_unet_not_a_layer.alpha"] = []
def lora_tensor(n, s):
    if n.endswith(".alpha"):
        return np.array(2.0, np.float32)
    return rng.standard_normal(s, dtype=np.float32) * 0.2
stream(out_lora, lora_shapes, lora_tensor, {"ss_base_model_version": "sdxl_base_v1-0", "ss_network_module": "networks.lora"})
kinds = {}
for m in selected:
    kinds[m.split("_")[1]] = kinds.get(m.split("_")[1], 0) + 1
print("lora modules:", len(selected) + 1, kinds, "conv sample:", len(convs[::9]))

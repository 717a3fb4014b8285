"""Which tensor of an SDXL checkpoint each sd-scripts LoRA module changes, and which rows of it.

    module_targets(tensor_names) -> dict[module name, Target]    pure; names only, no file access

sd-scripts names a LoRA module after the layer it wraps, dots turned into underscores, with a prefix
per model (networks/lora.py: ``lora_unet``, ``lora_te1``, ``lora_te2``). ``sdxl_merge_lora.py``
merges into the models as sd-scripts holds them and saves them with
``sdxl_model_util.save_stable_diffusion_checkpoint``, so the checkpoint key of a module is:

* U-Net (``model.diffusion_model.``) and text encoder 1 (``conditioner.embedders.0.transformer.``):
  the layer's own name, so the module name is the key with dots as underscores;
* text encoder 2 (``conditioner.embedders.1.model.``): sd-scripts holds it as a transformers
  CLIPTextModelWithProjection and converts back to the OpenCLIP layout on save
  (``convert_text_encoder_2_state_dict_to_sdxl``): ``fc1``/``fc2`` become ``mlp.c_fc``/``mlp.c_proj``,
  ``self_attn.out_proj`` becomes ``attn.out_proj``, and q_proj, k_proj, v_proj are concatenated,
  in that order, into one ``attn.in_proj_weight``: three modules, one tensor, a third of its rows each.

Going from the checkpoint's keys to module names (not the other way) keeps this exact: a module
whose name no key produces has no target (sd-scripts logs "no module found" and skips it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

UNET_PREFIX = "model.diffusion_model."
TE1_PREFIX = "conditioner.embedders.0.transformer."
TE2_PREFIX = "conditioner.embedders.1.model."

_TE2_LAYER = re.compile(r"^transformer\.resblocks\.(\d+)\.(attn\.in_proj_weight|attn\.out_proj\.weight|mlp\.c_fc\.weight|mlp\.c_proj\.weight)$")
_TE2_MODULES = {
    "attn.out_proj.weight": "self_attn_out_proj",
    "mlp.c_fc.weight": "mlp_fc1",
    "mlp.c_proj.weight": "mlp_fc2",
}
_FUSED_QKV = ("q_proj", "k_proj", "v_proj")  # torch.cat([q, k, v]) in convert_text_encoder_2_state_dict_to_sdxl


@dataclass(frozen=True)
class Target:
    key: str  # the checkpoint tensor
    rows: tuple[int, int] | None = None  # the dim-0 rows this module writes; None = the whole tensor


def module_targets(tensors: Mapping[str, tuple[str, Sequence[int]]] | Iterable[str]) -> dict[str, Target]:
    """LoRA module name → its target, for every layer of the checkpoint a module could wrap.

    ``tensors`` maps names to (dtype, shape) as in a safetensors header; the shape is needed only to
    split text encoder 2's fused q/k/v rows (a plain iterable of names leaves those out).
    """
    shapes = tensors if isinstance(tensors, Mapping) else {name: None for name in tensors}
    out: dict[str, Target] = {}
    for key, info in shapes.items():
        if key.startswith(TE2_PREFIX):
            out.update(_te2_targets(key, info))
            continue
        if not key.endswith(".weight"):
            continue
        for prefix, lora_prefix in ((UNET_PREFIX, "lora_unet_"), (TE1_PREFIX, "lora_te1_")):
            if key.startswith(prefix):
                out[lora_prefix + key[len(prefix):-len(".weight")].replace(".", "_")] = Target(key)
    return out


def _te2_targets(key: str, info) -> dict[str, Target]:
    match = _TE2_LAYER.match(key[len(TE2_PREFIX):])
    if not match:
        return {}
    layer, part = match.groups()
    stem = f"lora_te2_text_model_encoder_layers_{layer}_"
    if part != "attn.in_proj_weight":
        return {stem + _TE2_MODULES[part]: Target(key)}
    shape = info[1] if info is not None else None
    if not shape or shape[0] % 3:
        return {}  # not the fused [3d, d] layout sd-scripts writes: no module can be placed in it
    third = shape[0] // 3
    return {f"{stem}self_attn_{name}": Target(key, (index * third, (index + 1) * third))
            for index, name in enumerate(_FUSED_QKV)}

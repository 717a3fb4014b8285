"""Merge verification across all three SDXL models, text encoder 2's fused q/k/v included.

sd-scripts saves text encoder 2 in the OpenCLIP layout, where the q, k and v projections of a layer
are one tensor (attn.in_proj_weight, rows [q; k; v]). A LoRA that trains the text encoders has
three modules writing that one tensor: the check must not call the tensor an unexpected change,
and must still name a skipped k_proj although q and v changed the same tensor.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.helpers import REPO

TE2 = "conditioner.embedders.1.model.transformer.resblocks.0."
TE1 = "conditioner.embedders.0.transformer.text_model.encoder.layers.0."
D = 8  # hidden size of the tiny encoders

CHECKPOINT = {
    "model.diffusion_model.input_blocks.4.1.proj_in.weight": (D, D),
    "model.diffusion_model.output_blocks.2.1.conv.weight": (D, D, 3, 3),
    TE1 + "self_attn.q_proj.weight": (D, D),
    TE1 + "mlp.fc1.weight": (4 * D, D),
    TE2 + "attn.in_proj_weight": (3 * D, D),
    TE2 + "attn.in_proj_bias": (3 * D,),
    TE2 + "attn.out_proj.weight": (D, D),
    TE2 + "mlp.c_fc.weight": (4 * D, D),
    TE2 + "mlp.c_proj.weight": (D, 4 * D),
    TE2 + "ln_1.weight": (D,),
    "conditioner.embedders.1.model.text_projection": (D, D),
    "first_stage_model.decoder.conv_in.weight": (4, 4, 3, 3),
}
# module → (out, in, kernel) of the layer it wraps
MODULES = {
    "lora_unet_input_blocks_4_1_proj_in": (D, D, None),
    "lora_unet_output_blocks_2_1_conv": (D, D, 3),
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj": (D, D, None),
    "lora_te1_text_model_encoder_layers_0_mlp_fc1": (4 * D, D, None),
    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj": (D, D, None),
    "lora_te2_text_model_encoder_layers_0_self_attn_k_proj": (D, D, None),
    "lora_te2_text_model_encoder_layers_0_self_attn_v_proj": (D, D, None),
    "lora_te2_text_model_encoder_layers_0_self_attn_out_proj": (D, D, None),
    "lora_te2_text_model_encoder_layers_0_mlp_fc1": (4 * D, D, None),
    "lora_te2_text_model_encoder_layers_0_mlp_fc2": (D, 4 * D, None),
}


def test_module_targets_cover_unet_te1_and_te2_with_fused_rows():
    from swimlatent_wrap.release.lora_targets import Target, module_targets

    targets = module_targets({key: ("F16", list(shape)) for key, shape in CHECKPOINT.items()})
    assert {m: targets[m] for m in MODULES} == {
        "lora_unet_input_blocks_4_1_proj_in": Target("model.diffusion_model.input_blocks.4.1.proj_in.weight"),
        "lora_unet_output_blocks_2_1_conv": Target("model.diffusion_model.output_blocks.2.1.conv.weight"),
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj": Target(TE1 + "self_attn.q_proj.weight"),
        "lora_te1_text_model_encoder_layers_0_mlp_fc1": Target(TE1 + "mlp.fc1.weight"),
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj": Target(TE2 + "attn.in_proj_weight", (0, D)),
        "lora_te2_text_model_encoder_layers_0_self_attn_k_proj": Target(TE2 + "attn.in_proj_weight", (D, 2 * D)),
        "lora_te2_text_model_encoder_layers_0_self_attn_v_proj": Target(TE2 + "attn.in_proj_weight", (2 * D, 3 * D)),
        "lora_te2_text_model_encoder_layers_0_self_attn_out_proj": Target(TE2 + "attn.out_proj.weight"),
        "lora_te2_text_model_encoder_layers_0_mlp_fc1": Target(TE2 + "mlp.c_fc.weight"),
        "lora_te2_text_model_encoder_layers_0_mlp_fc2": Target(TE2 + "mlp.c_proj.weight"),
    }
    # biases, norms, the projection and the VAE are no module's target
    assert not any(t.key.endswith(("bias", "ln_1.weight", "text_projection")) or t.key.startswith("first_stage_model.")
                   for t in targets.values())
    # an in_proj that is not [3d, d] cannot be split: no module is placed in it
    odd = module_targets({TE2 + "attn.in_proj_weight": ("F16", [10, 8])})
    assert odd == {}


def _write_pair(folder, ratio_scale: float = 0.3):
    rng = np.random.default_rng(3)
    base = {key: (rng.standard_normal(shape) * 0.02).astype(np.float16) for key, shape in CHECKPOINT.items()}
    save_file(base, str(folder / "base.safetensors"))
    lora, dim = {}, 2
    for name, (out, inp, kernel) in MODULES.items():
        down_shape = (dim, inp) if kernel is None else (dim, inp, kernel, kernel)
        up_shape = (out, dim) if kernel is None else (out, dim, 1, 1)
        lora[name + ".lora_down.weight"] = (rng.standard_normal(down_shape) * ratio_scale).astype(np.float32)
        lora[name + ".lora_up.weight"] = (rng.standard_normal(up_shape) * ratio_scale).astype(np.float32)
        lora[name + ".alpha"] = np.array(1.0, np.float32)
    save_file(lora, str(folder / "lora.safetensors"))
    return folder / "base.safetensors", folder / "lora.safetensors"


def _merge(folder, base, lora, skip: str = "") -> subprocess.CompletedProcess:
    """The stand-in sdxl_merge_lora.py as a real child process (argv as the wrapper builds it)."""
    merged = folder / "merged.safetensors"
    argv = [sys.executable, str(REPO / "tests/release/merge_standin.py"), "--sd_model", str(base), "--models", str(lora),
            "--ratios", "0.75", "--save_precision", "fp16", "--precision", "float", "--save_to", str(merged)]
    env = {"PYTHONPATH": str(REPO), "STANDIN_MERGE_SKIP": skip, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_a_full_merge_with_text_encoders_passes(tmp_path):
    from swimlatent_wrap.release.merge import verify_merge

    base, lora = _write_pair(tmp_path)
    _merge(tmp_path, base, lora)
    check = verify_merge(base, lora, tmp_path / "merged.safetensors")
    assert check.ok, check.as_dict()
    assert len(check.modules) == len(MODULES) and not check.not_checked
    # 10 modules, 8 tensors: te2's q, k and v share one
    assert len(check.changed) == 8 and TE2 + "attn.in_proj_weight" in check.changed
    assert TE2 + "attn.in_proj_bias" not in check.changed


@pytest.mark.parametrize("skipped", [
    "lora_te2_text_model_encoder_layers_0_self_attn_k_proj",  # its tensor still changed (q and v rows)
    "lora_te2_text_model_encoder_layers_0_mlp_fc2",
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
])
def test_a_skipped_text_encoder_module_is_named(tmp_path, skipped):
    from swimlatent_wrap.release.merge import verify_merge

    base, lora = _write_pair(tmp_path)
    log = _merge(tmp_path, base, lora, skip=skipped)
    assert f"no module found for LoRA weight: {skipped}" in log.stdout
    check = verify_merge(base, lora, tmp_path / "merged.safetensors")
    assert not check.ok
    assert check.unchanged == [skipped] and check.unexpected == [] and check.missing_target == []


def test_a_change_outside_every_module_is_unexpected(tmp_path):
    """The merge touched text encoder 2's bias (no LoRA module writes a bias): named, not hidden."""
    from safetensors.numpy import load_file

    from swimlatent_wrap.release.merge import verify_merge

    base, lora = _write_pair(tmp_path)
    _merge(tmp_path, base, lora)
    merged = load_file(str(tmp_path / "merged.safetensors"))
    merged[TE2 + "attn.in_proj_bias"] = merged[TE2 + "attn.in_proj_bias"] + np.float16(0.5)
    save_file(merged, str(tmp_path / "merged.safetensors"))
    check = verify_merge(base, lora, tmp_path / "merged.safetensors")
    assert check.unexpected == [TE2 + "attn.in_proj_bias"] and check.unchanged == []

"""`swimlatent merge`: the stand-in merge script as a real child, the merge verified tensor by tensor."""

from __future__ import annotations

import json
import shlex
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.helpers import REPO, run_cli
from tests.release import safetensors_files as sf

SHIPPED = REPO / "recipes" / "swim-in-latent"


@pytest.fixture
def setup(tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "ft.toml").write_text(f'extends = "{SHIPPED}/base.toml"\nname = "ft"\n')
    (recipes / "lora.toml").write_text(f'extends = "{SHIPPED}/lora.toml"\nname = "lora"\n'
                                       '[merge]\nratio = 0.5\nsave_precision = "fp16"\n')
    sd = tmp_path / "sd-scripts"
    (sd / "networks").mkdir(parents=True)
    shutil.copy(REPO / "tests/release/merge_standin.py", sd / "networks" / "sdxl_merge_lora.py")
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    sf.checkpoint(work / "models" / "ft.safetensors")
    modules = sf.lora(work / "models" / "lora.safetensors")
    return {"recipe": recipes / "lora.toml", "sd": sd, "work": work, "modules": modules}


def merge(setup, *extra, env=None):
    return run_cli("--workdir", str(setup["work"]), "--sd-scripts", str(setup["sd"]), "merge", str(setup["recipe"]), *extra, env=env)


def test_merge_runs_verifies_and_places_the_model(setup):
    result = merge(setup)
    assert result.returncode == 0, result.stderr
    assert "merge verified: 5 model tensors changed for 5 LoRA modules" in result.stdout
    merged = setup["work"] / "models" / "merged.safetensors"
    base = load_file(str(setup["work"] / "models" / "ft.safetensors"))
    lora = load_file(str(setup["work"] / "models" / "lora.safetensors"))
    out = load_file(str(merged))
    # the math, independently: W + 0.5 * up @ down * alpha / dim, saved as fp16
    name = "lora_unet_input_blocks_4_1_proj_in"
    expected = base["model.diffusion_model.input_blocks.4.1.proj_in.weight"] + 0.5 * (
        lora[name + ".lora_up.weight"] @ lora[name + ".lora_down.weight"]) * (2.0 / 4)
    assert out["model.diffusion_model.input_blocks.4.1.proj_in.weight"].dtype == np.float16
    assert np.allclose(out["model.diffusion_model.input_blocks.4.1.proj_in.weight"], expected, atol=1e-2)
    (run_dir,) = (setup["work"] / "runs" / "merge").iterdir()
    record = json.loads((run_dir / "merge.json").read_text())
    assert record["placed"] == str(merged) and record["check"]["modules"] == 5 and record["check"]["changed_tensors"] == 5
    argv = record["argv"]
    assert argv[1] == str(setup["sd"] / "networks" / "sdxl_merge_lora.py")
    assert argv[2:12] == ["--sd_model", str(setup["work"] / "models/ft.safetensors"),
                          "--models", str(setup["work"] / "models/lora.safetensors"), "--ratios", "0.5",
                          "--save_precision", "fp16", "--precision", "float"]
    assert argv[12] == "--save_to" and argv[13] == str(run_dir / "merged.safetensors")
    assert not (run_dir / "merged.safetensors").exists()


def test_a_merge_that_skips_modules_is_caught_and_not_placed(setup):
    skipped = ["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_k", "lora_unet_output_blocks_2_1_conv"]
    result = merge(setup, env={"STANDIN_MERGE_SKIP": ",".join(skipped)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "3 model tensors changed for 5 LoRA modules" in result.stderr
    assert "2 LoRA modules left their target unchanged (not merged): " + ", ".join(sorted(skipped)) in result.stderr
    assert not (setup["work"] / "models" / "merged.safetensors").exists()


def test_a_module_with_no_target_is_named(setup):
    sf.lora(setup["work"] / "models" / "lora.safetensors")
    from safetensors.numpy import save_file

    lora = load_file(str(setup["work"] / "models" / "lora.safetensors"))
    lora["lora_unet_input_blocks_9_9_nothing.lora_down.weight"] = np.ones((4, 8), np.float32)
    lora["lora_unet_input_blocks_9_9_nothing.lora_up.weight"] = np.ones((8, 4), np.float32)
    save_file(lora, str(setup["work"] / "models" / "lora.safetensors"))
    result = merge(setup)
    assert result.returncode == 1
    assert "1 LoRA modules have no target in the model: lora_unet_input_blocks_9_9_nothing" in result.stderr


def test_dry_run_prints_the_command_and_writes_nothing(setup):
    result = merge(setup, "--dry-run")
    assert result.returncode == 0, result.stderr
    argv = shlex.split(result.stdout.strip())
    assert argv[1].endswith("networks/sdxl_merge_lora.py") and argv[argv.index("--ratios") + 1] == "0.5"
    assert not (setup["work"] / "runs").exists()


def test_lora_names_map_to_checkpoint_keys():
    from swimlatent_wrap.release.merge import lora_name

    assert lora_name("model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight") == \
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    assert lora_name("conditioner.embedders.0.transformer.text_model.encoder.layers.0.mlp.fc1.weight") == \
        "lora_te1_text_model_encoder_layers_0_mlp_fc1"
    assert lora_name("model.diffusion_model.out.2.bias") is None


def test_bf16_and_fp16_rounding_used_by_the_check():
    from swimlatent_wrap.release.merge import _as_float32, _round_to

    bf16 = np.array([0x3F80, 0xC000, 0x3F81], dtype="<u2").tobytes()  # 1.0, -2.0, 1.0078125
    assert _as_float32(bf16, "BF16").tolist() == [1.0, -2.0, 1.0078125]
    ties = np.array([1.00390625, 1.01171875, 1.0078125], dtype=np.float32)  # halfway, halfway, exact
    assert _round_to(ties, "BF16").tolist() == [1.0, 1.015625, 1.0078125]  # to nearest even, as torch
    assert _round_to(np.array([1.0001], np.float32), "F16").tolist() == [1.0]
    assert _as_float32(np.array([1.5], np.float16).tobytes(), "F16").tolist() == [1.5]

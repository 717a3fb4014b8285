"""Each sd-scripts trap that applies to planning (facts §0), handled: refused with the reason, or
emitted the way sd-scripts needs it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from swimlatent_wrap.recipe import RecipeError, load_recipe
from swimlatent_wrap.stages.plan import make_plan
from swimlatent_wrap.workdir import Workdir


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    return {p.key: p.message for p in caught.value.problems}


def plan(path: Path, tmp_path: Path):
    return make_plan(load_recipe(path), run_dir=tmp_path / "run", workdir=Workdir(tmp_path / "w"), sd_scripts=tmp_path / "sd")


def recipe(write_recipe, body: str, name: str = "t") -> Path:
    return write_recipe(f"{name}.toml", f'extends = "@BASE@"\nname = "{name}"\n' + body)


def test_script_mixed_precision_is_always_passed_and_required(write_recipe, tmp_path):  # §0.6
    the_plan = plan(recipe(write_recipe, '[args]\nmixed_precision = "fp16"\nfull_bf16 = false\n'), tmp_path)
    assert the_plan.script_argv[-2:] == ["--mixed_precision", "fp16"]
    assert the_plan.argv[the_plan.argv.index("--mixed_precision") + 1] == "fp16"  # the launcher agrees
    bare = write_recipe("bare.toml", """
        name = "bare"
        script = "sdxl_train"
        model = "hf:a/b/c.safetensors"
        [dataset]
        name = "d"
        source = "folder"
        path = "."
    """)
    assert "sd-scripts passes its own value" in problems(bare)["args.mixed_precision"]


def test_full_bf16_needs_bf16(write_recipe):
    found = problems(recipe(write_recipe, '[args]\nmixed_precision = "fp16"\nfull_bf16 = true\n'))
    assert "needs mixed_precision = \"bf16\"" in found["args.full_bf16"]


def test_caption_extension_is_txt(write_recipe, tmp_path):  # §0.7
    general = tomllib.loads(plan(recipe(write_recipe, ""), tmp_path).files["dataset.toml"])["general"]
    assert general["caption_extension"] == ".txt"
    found = problems(recipe(write_recipe, '[dataset_config]\ncaption_extension = ".caption"\n', "c"))
    assert "writes .txt captions" in found["dataset_config.caption_extension"]
    images = tmp_path / "own"
    images.mkdir()
    own = recipe(write_recipe, f'[dataset]\nname = "own"\nsource = "folder"\npath = "{images}"\n'
                 '[dataset_config]\ncaption_extension = ".caption"\n', "own")
    general = tomllib.loads(plan(own, tmp_path).files["dataset.toml"])["general"]
    assert general["caption_extension"] == ".caption"  # your own folder, your own caption files


def test_save_model_as_is_safetensors(write_recipe, tmp_path):  # §0.8
    args = tomllib.loads(plan(recipe(write_recipe, ""), tmp_path).files["args.toml"])
    assert args["save_model_as"] == "safetensors"
    assert "always safetensors" in problems(recipe(write_recipe, '[args]\nsave_model_as = "ckpt"\n', "c"))["args.save_model_as"]


def test_abbreviated_option_names_are_refused(write_recipe):  # §0.3
    found = problems(recipe(write_recipe, "[args]\nsave_every_n_epoch = 1\n"))
    assert "did you mean 'save_every_n_epochs'?" in found["args.save_every_n_epoch"]


def test_optimizer_and_scheduler_values(write_recipe, tmp_path):  # §0.4
    for ok in ("lion", "AdamW8bit", "Adafactor", "bitsandbytes.optim.AdEMAMix8bit", "RAdam"):
        plan(recipe(write_recipe, f'[args]\noptimizer_type = "{ok}"\n', "ok"), tmp_path)
    found = problems(recipe(write_recipe, '[args]\noptimizer_type = "Loin"\nlr_scheduler = "cosine_restarts"\n', "bad"))
    assert "did you mean 'Lion'?" in found["args.optimizer_type"]
    assert "did you mean 'cosine_with_restarts'?" in found["args.lr_scheduler"]


def test_warmup_with_a_constant_scheduler_is_refused(write_recipe):  # §0.4
    found = problems(recipe(write_recipe, '[args]\nlr_scheduler = "constant"\nlr_warmup_steps = 100\n'))
    assert "constant_with_warmup" in found["args.lr_warmup_steps"]


def test_warmup_float_means_a_ratio(write_recipe, tmp_path):  # §0.5
    assert "must be below 1" in problems(recipe(write_recipe, "[args]\nlr_warmup_steps = 100.0\n"))["args.lr_warmup_steps"]
    args = tomllib.loads(plan(recipe(write_recipe, "[args]\nlr_warmup_steps = 0.05\n", "r"), tmp_path).files["args.toml"])
    assert args["lr_warmup_steps"] == 0.05


def test_cached_text_encoder_outputs_with_shuffle_or_dropout(write_recipe):  # §0.11
    found = problems(recipe(write_recipe, "[args]\ncache_text_encoder_outputs = true\n"))
    message = found["args.cache_text_encoder_outputs"]
    assert "shuffle_caption, caption_dropout_rate" in message and "cached output is reused" in message


def test_lora_caching_text_encoder_outputs_needs_unet_only(write_recipe):  # §0.11
    found = problems(recipe(write_recipe, """
        script = "sdxl_train_network"
        [dataset_config]
        shuffle_caption = false
        caption_dropout_rate = 0.0
        [args]
        network_module = "networks.lora"
        cache_text_encoder_outputs = true
    """.replace("\n        ", "\n")))
    assert "network_train_unet_only" in found["args.cache_text_encoder_outputs"]


def test_metadata_datasets_need_cached_latents_with_sdxl_train(write_recipe, tmp_path):  # §0.10
    meta = tmp_path / "meta.json"
    meta.write_text("{}")
    body = f'[dataset]\nmetadata_file = "{meta}"\n[args]\ncache_latents = false\ncache_latents_to_disk = false\n'
    assert "needs cache_latents" in problems(recipe(write_recipe, body))["dataset.metadata_file"]
    the_plan = plan(recipe(write_recipe, f'[dataset]\nmetadata_file = "{meta}"\n', "cached"), tmp_path)
    document = tomllib.loads(the_plan.files["dataset.toml"])
    assert document["datasets"][0]["subsets"][0]["metadata_file"] == str(meta)
    assert "caption_extension" not in document["general"]  # not accepted for fine-tuning datasets


def test_bucket_steps_divisible_by_32(write_recipe):  # §0.16
    found = problems(recipe(write_recipe, "[dataset_config]\nbucket_reso_steps = 48\n"))
    assert "divisible by 32" in found["dataset_config.bucket_reso_steps"]


def test_toml_types_as_sd_scripts_expects(write_recipe, tmp_path):  # §0.1, §0.17
    the_plan = plan(recipe(write_recipe, """
        [args]
        min_snr_gamma = 5
        optimizer_args = ["weight_decay=0.01", "betas=0.9,0.99"]
        [dataset_config]
        validation_split = 0
    """.replace("\n        ", "\n")), tmp_path)
    args_text = the_plan.files["args.toml"]
    assert "min_snr_gamma = 5.0\n" in args_text
    args = tomllib.loads(args_text)
    assert args["optimizer_args"] == ["weight_decay=0.01", "betas=0.9,0.99"]
    assert "validation_split = 0.0\n" in the_plan.files["dataset.toml"]
    found = problems(recipe(write_recipe, '[args]\noptimizer_args = "weight_decay=0.01"\nmax_train_epochs = 2.0\n', "bad"))
    assert found["args.optimizer_args"] == "expected an array, got a string ('weight_decay=0.01')"
    assert found["args.max_train_epochs"] == "expected an integer, got a float (2.0)"
    assert "exactly one" in problems(recipe(write_recipe, '[args]\noptimizer_args = ["a=b=c"]\n', "eq"))["args.optimizer_args"]


def test_flags_take_booleans(write_recipe):
    assert "is a flag" in problems(recipe(write_recipe, '[args]\ngradient_checkpointing = "yes"\n'))["args.gradient_checkpointing"]


def test_options_of_the_other_script_are_named_as_such(write_recipe):
    found = problems(recipe(write_recipe, "[args]\nnetwork_dim = 16\n"))
    assert found["args.network_dim"] == "is an option of sdxl_train_network.py, not of sdxl_train.py"


def test_wrapper_owned_options_and_secrets_are_refused(write_recipe):
    found = problems(recipe(write_recipe, '[args]\noutput_dir = "/x"\nhuggingface_token = "hf_abc"\nwandb_api_key = "k"\n'))
    assert "run folder" in found["args.output_dir"]
    assert "HF_TOKEN" in found["args.huggingface_token"] and "WANDB_API_KEY" in found["args.wandb_api_key"]


def test_dataset_settings_in_args_are_redirected(write_recipe):
    found = problems(recipe(write_recipe, "[args]\ntrain_batch_size = 2\nshuffle_caption = true\n"))
    assert "put `batch_size` in [dataset_config]" in found["args.train_batch_size"]
    assert "put `shuffle_caption` in [dataset_config]" in found["args.shuffle_caption"]


def test_cached_latents_refuse_pixel_augmentations(write_recipe):
    found = problems(recipe(write_recipe, "[dataset_config]\ncolor_aug = true\n"))
    assert "cached latents" in found["dataset_config.color_aug"]


def test_keep_tokens_must_cover_the_prefix(write_recipe):
    found = problems(recipe(write_recipe, "[dataset_config]\nkeep_tokens = 2\n"))
    assert "prefix has 4 tags" in found["dataset_config.keep_tokens"]


def test_sample_prompts_get_explicit_size_and_a_valid_sampler(write_recipe, tmp_path):  # §0.13
    lines = plan(recipe(write_recipe, ""), tmp_path).files["prompts.txt"].splitlines()
    assert lines and all(" --w 1024 --h 1024 " in line and " --d " in line for line in lines)
    found = problems(recipe(write_recipe, '[sample]\nsampler = "dpm++_2m_karras"\n', "s"))
    assert "expected one of ddim" in found["sample.sampler"]


def test_deepspeed_options_need_deepspeed(write_recipe, tmp_path):
    assert "without deepspeed = true" in problems(recipe(write_recipe, "[args]\nzero_stage = 3\n"))["args.zero_stage"]
    args = tomllib.loads(plan(recipe(write_recipe, "[args]\ndeepspeed = true\nzero_stage = 3\n", "ds"), tmp_path).files["args.toml"])
    assert args["deepspeed"] is True and args["zero_stage"] == 3


def test_resolution_reaches_the_command_line_for_modelspec(write_recipe, tmp_path):  # §0.12
    args = tomllib.loads(plan(recipe(write_recipe, "[dataset_config]\nresolution = [896, 1152]\n"), tmp_path).files["args.toml"])
    assert args["resolution"] == "896,1152"

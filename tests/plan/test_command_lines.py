"""The one sd-scripts command-line builder: the three command lines it makes (the training launch,
the sweep's sdxl_gen_img.py, the merge's sdxl_merge_lora.py) as exact lists, and what it refuses."""

from __future__ import annotations


import pytest

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.release.merge import merge_argv
from swimlatent_wrap.release.sweep import gen_argv
from swimlatent_wrap.sdscripts.command import command_argv, options_argv, script_argv
from swimlatent_wrap.sdscripts.launch import ACCELERATE_OPTIONS
from swimlatent_wrap.sdscripts.manifest import load_manifest, parse_manifest
from swimlatent_wrap.stages.plan import make_plan
from swimlatent_wrap.workdir import Workdir
from tests.helpers import REPO

SHIPPED = REPO / "recipes" / "swim-in-latent"
PY = "/opt/venv/bin/python"


@pytest.fixture
def lora_recipe(write_recipe):
    return load_recipe(write_recipe("lora.toml", f"""
        extends = "{SHIPPED}/lora.toml"
        name = "lora"
        [launch]
        python = "{PY}"
        num_processes = 2
        gpu_ids = "0,1"
        [sweep]
        sampler = "k_euler"
        [merge]
        ratio = 0.6
        precision = "fp16"
    """))


def test_sdxl_train_launch(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe("small.toml", f'extends = "@BASE@"\nname = "small"\n[launch]\npython = "{PY}"\n'))
    plan = make_plan(recipe, run_dir=tmp_path / "run", workdir=Workdir(tmp_path / "work"), sd_scripts=tmp_path / "sd")
    assert plan.argv == [
        PY, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "bf16", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
        str(tmp_path / "sd" / "sdxl_train.py"), "--config_file", str(tmp_path / "run" / "args.toml"),
        "--mixed_precision", "bf16"]
    assert plan.script_argv == plan.argv[13:]


def test_sdxl_train_network_launch(lora_recipe, tmp_path):
    plan = make_plan(lora_recipe, run_dir=tmp_path / "run", workdir=Workdir(tmp_path / "work"), sd_scripts=tmp_path / "sd")
    assert plan.argv == [
        PY, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "bf16", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
        "--multi_gpu", "--gpu_ids", "0,1",
        str(tmp_path / "sd" / "sdxl_train_network.py"), "--config_file", str(tmp_path / "run" / "args.toml"),
        "--mixed_precision", "bf16"]


def test_sdxl_gen_img_sweep(lora_recipe, tmp_path):
    argv = gen_argv(lora_recipe, python="py", sd_scripts=tmp_path / "sd", model=tmp_path / "ft.safetensors",
                    lora=tmp_path / "lora.safetensors", prompts=tmp_path / "out" / "prompts.txt", outdir=tmp_path / "out",
                    tokenizer_cache=tmp_path / "tok")
    assert argv == [
        "py", str(tmp_path / "sd" / "sdxl_gen_img.py"), "--ckpt", str(tmp_path / "ft.safetensors"),
        "--network_module", "networks.lora", "--network_weights", str(tmp_path / "lora.safetensors"),
        "--network_mul", "1.0", "--from_file", str(tmp_path / "out" / "prompts.txt"), "--outdir", str(tmp_path / "out"),
        "--sequential_file_name", "--sampler", "k_euler", "--images_per_prompt", "1", "--batch_size", "1",
        "--tokenizer_cache_dir", str(tmp_path / "tok"), "--sdpa", "--bf16", "--no_half_vae"]


def test_sdxl_merge_lora_merge(lora_recipe, tmp_path):
    work = Workdir(tmp_path / "work")
    argv = merge_argv(lora_recipe, work, str(tmp_path / "sd"), tmp_path / "run" / "merged.safetensors")
    assert argv == [
        PY, str(tmp_path / "sd" / "networks" / "sdxl_merge_lora.py"),
        "--sd_model", str(work.model_path("ft")), "--models", str(work.model_path("lora")), "--ratios", "0.6",
        "--save_precision", "fp16", "--precision", "fp16", "--save_to", str(tmp_path / "run" / "merged.safetensors")]


def test_the_script_path_is_the_manifests_file(tmp_path):
    manifest = load_manifest()
    for name in ("sdxl_train", "sdxl_train_network", "sdxl_merge_lora", "sdxl_gen_img", "tagger"):
        assert script_argv(manifest, name, sd_scripts=tmp_path, options={}) == [str(tmp_path / manifest.script(name).file)]
    moved = toy_manifest(file="elsewhere/deeper/gen.py")
    assert command_argv(moved, "toy", python="py", sd_scripts=tmp_path, options={})[1] == str(tmp_path / "elsewhere/deeper/gen.py")


def toy_manifest(file: str = "toy.py"):
    options = {"on": {"kind": "flag", "type": "bool"}, "off": {"kind": "flag", "type": "bool"},
               "steps": {"kind": "valued", "type": "int"}, "scale": {"kind": "valued", "type": "float"},
               "mode": {"kind": "valued", "type": "str", "choices": ["a", "b"]},
               "ratios": {"kind": "list", "type": "float"}, "folder": {"kind": "positional", "type": "str"}}
    return parse_manifest({"sd_scripts_commit": "0123456789abcdef", "lr_schedulers": [],
                           "dataset_config": {"levels": {}}, "scripts": {"toy": {"file": file, "options": options}}})


def test_every_kind_is_written_in_order_with_positionals_first(tmp_path):
    argv = command_argv(toy_manifest(), "toy", python="py", sd_scripts=tmp_path, options={
        "on": True, "off": False, "steps": 28, "scale": 7.0, "ratios": [0, 0.25, 1.0], "mode": "b", "folder": tmp_path / "img"})
    assert argv == ["py", str(tmp_path / "toy.py"), str(tmp_path / "img"), "--on", "--steps", "28", "--scale", "7.0",
                    "--ratios", "0", "0.25", "1.0", "--mode", "b"]


def test_an_unknown_option_is_refused_naming_it_and_the_script(tmp_path):
    with pytest.raises(UserError) as caught:
        command_argv(load_manifest(), "sdxl_gen_img", python="py", sd_scripts=tmp_path,
                     options={"ckpt": "m.safetensors", "no_such_option": 1})
    assert "--no_such_option" in str(caught.value) and "sdxl_gen_img.py" in str(caught.value)
    with pytest.raises(UserError, match="sdxl_merge_lora.py"):  # an option of another script is not one of this one
        command_argv(load_manifest(), "sdxl_merge_lora", python="py", sd_scripts=tmp_path, options={"sdpa": True})
    with pytest.raises(UserError, match="accelerate launch has no option --num_gpus"):
        options_argv("accelerate launch", ACCELERATE_OPTIONS, {"num_gpus": 2})
    with pytest.raises(UserError, match="no sd-scripts script 'sdxl_nothing'"):
        script_argv(load_manifest(), "sdxl_nothing", sd_scripts=tmp_path, options={})


@pytest.mark.parametrize("value", [1, "true", None, "--sdpa"])
def test_a_flag_given_a_non_bool_is_refused(tmp_path, value):
    with pytest.raises(UserError) as caught:
        command_argv(load_manifest(), "sdxl_gen_img", python="py", sd_scripts=tmp_path, options={"sdpa": value})
    assert "--sdpa is a flag" in str(caught.value) and "sdxl_gen_img.py" in str(caught.value)


@pytest.mark.parametrize("options,needle", [
    ({"steps": True}, "--steps takes one value"),
    ({"steps": None}, "--steps takes one value"),
    ({"steps": [1, 2]}, "--steps takes one value"),
    ({"ratios": 0.5}, "--ratios takes a list"),
    ({"ratios": []}, "--ratios takes a list"),
    ({"ratios": [0.5, None]}, "--ratios takes one value"),
    ({"mode": "c"}, "--mode: expected one of a, b, got 'c'"),
])
def test_a_value_of_the_wrong_shape_is_refused(tmp_path, options, needle):
    with pytest.raises(UserError) as caught:
        script_argv(toy_manifest(), "toy", sd_scripts=tmp_path, options=options)
    assert needle in str(caught.value)

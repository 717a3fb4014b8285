"""`swimlatent plan`: the shipped recipes' exact launches, golden files, determinism, secrets."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.sdscripts.manifest import load_manifest
from swimlatent_wrap.stages.plan import make_plan
from swimlatent_wrap.workdir import Workdir
from tests.helpers import REPO, run_cli

RECIPES = REPO / "recipes"
GOLDEN = REPO / "tests" / "plan" / "golden"
STAGES = ("base", "ft", "lora")


def plan_files(tmp_path: Path, stage: str, env: dict | None = None) -> dict[str, str]:
    out = tmp_path / "plan"
    result = run_cli("--workdir", str(tmp_path / "work"), "--sd-scripts", str(tmp_path / "sd-scripts"),
                     "plan", str(RECIPES / "swim-in-latent" / f"{stage}.toml"), "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (out / "command.sh").read_text().strip()
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(out.iterdir())}


def normalise(text: str, tmp_path: Path) -> str:
    return text.replace(str(tmp_path), "<TMP>").replace(sys.executable, "<PYTHON>")


@pytest.mark.parametrize("stage", STAGES)
def test_plan_matches_golden_files(tmp_path, stage):
    files = plan_files(tmp_path, stage)
    assert set(files) == {"argv.json", "args.toml", "dataset.toml", "command.sh", "prompts.txt"}
    golden_dir = GOLDEN / stage
    if os.environ.get("SWIMLATENT_UPDATE_GOLDEN"):
        golden_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (golden_dir / name).write_text(normalise(text, tmp_path), encoding="utf-8")
    for name, text in files.items():
        assert normalise(text, tmp_path) == (golden_dir / name).read_text(encoding="utf-8"), f"{stage}/{name} differs from golden"


@pytest.mark.parametrize("stage", STAGES)
def test_plan_is_byte_identical_on_rerun(tmp_path, stage):
    first = plan_files(tmp_path, stage)
    assert plan_files(tmp_path, stage) == first


@pytest.mark.parametrize("stage", STAGES)
def test_seed_settings_are_carried_one_to_one(tmp_path, stage):
    files = plan_files(tmp_path, stage)
    args = tomllib.loads(files["args.toml"])
    general = tomllib.loads(files["dataset.toml"])["general"]
    assert args["optimizer_type"] == "Lion"
    assert args["lr_scheduler"] == "cosine_with_restarts"
    assert args["min_snr_gamma"] == 5.0 and isinstance(args["min_snr_gamma"], float)
    assert args["mixed_precision"] == "bf16"
    assert args["learning_rate"] == (5e-5 if stage == "lora" else 4e-6)
    assert general["shuffle_caption"] is True
    assert general["caption_dropout_rate"] == 0.1
    assert general["keep_tokens"] == 4  # "new, newest, masterpiece, best quality" stays at the head
    assert general["caption_extension"] == ".txt"
    assert args["save_model_as"] == "safetensors"
    argv = json.loads(files["argv.json"])
    script = "sdxl_train_network.py" if stage == "lora" else "sdxl_train.py"
    assert argv[argv.index(str(tmp_path / "sd-scripts" / script)) + 1:] == [
        "--config_file", str(tmp_path / "plan" / "args.toml"), "--mixed_precision", "bf16"]


def test_ft_is_base_with_only_the_dataset_changed():
    base, ft = load_recipe(RECIPES / "swim-in-latent/base.toml"), load_recipe(RECIPES / "swim-in-latent/ft.toml")
    assert ft.args == base.args
    assert ft.dataset_config == base.dataset_config
    assert ft.captions == base.captions
    assert ft.script == base.script
    assert ft.dataset.name != base.dataset.name
    assert ft.model.stage == "base"


def test_the_24gb_variants_change_only_the_memory_settings_and_keep_the_stage_names():
    shipped = RECIPES / "swim-in-latent"
    base, ft = load_recipe(shipped / "base.toml"), load_recipe(shipped / "ft.toml")
    small_base, small_ft = load_recipe(shipped / "base-24gb.toml"), load_recipe(shipped / "ft-24gb.toml")
    memory = {"optimizer_type": "Lion8bit", "fused_optimizer_groups": 10, "gradient_accumulation_steps": 1}
    assert small_base.args == {**base.args, **memory} and small_ft.args == {**ft.args, **memory}
    assert (small_base.name, small_ft.name) == ("base", "ft")  # lora.toml's stage:ft finds either
    assert small_ft.dataset == ft.dataset and small_base.dataset == base.dataset
    for recipe in (base, ft, small_base, small_ft):
        assert "full_bf16" not in recipe.args and recipe.args["mixed_precision"] == "bf16"  # fp32 master weights
        assert recipe.args["learning_rate"] == 4e-6 and recipe.args["optimizer_type"].startswith("Lion")


def test_plan_paths_are_absolute_and_point_into_the_workdir(tmp_path):
    files = plan_files(tmp_path, "lora")
    args = tomllib.loads(files["args.toml"])
    for key in ("pretrained_model_name_or_path", "dataset_config", "output_dir", "logging_dir", "tokenizer_cache_dir", "sample_prompts"):
        assert Path(args[key]).is_absolute(), key
    assert args["pretrained_model_name_or_path"] == str(tmp_path / "work" / "models" / "ft.safetensors")
    subset = tomllib.loads(files["dataset.toml"])["datasets"][0]["subsets"][0]
    assert subset["image_dir"] == str(tmp_path / "work" / "datasets" / "danbooru-lora" / "images")
    base_args = tomllib.loads(plan_files(tmp_path / "b", "base")["args.toml"])
    assert base_args["pretrained_model_name_or_path"].endswith(
        "models/hub/stabilityai/stable-diffusion-xl-base-1.0/sd_xl_base_1.0.safetensors")


def test_no_secret_reaches_a_plan(tmp_path):
    secrets = {"DANBOORU_API_KEY": "sekrit-danbooru-0123456789", "HF_TOKEN": "hf_sekritsekritsekritsekrit0123456789",
               "DANBOORU_LOGIN": "someone-private", "WANDB_API_KEY": "wandb-sekrit-0123456789"}
    files = plan_files(tmp_path, "base", env=secrets)
    for text in files.values():
        for value in secrets.values():
            assert value not in text


def test_every_emitted_option_is_an_exact_option_name(tmp_path):
    """No abbreviations (facts §0.3): every --option in argv and every args.toml key is a full name."""
    manifest = load_manifest()
    for stage in STAGES:
        files = plan_files(tmp_path / stage, stage)
        argv = json.loads(files["argv.json"])
        script = "sdxl_train_network" if stage == "lora" else "sdxl_train"
        options = manifest.script(script).options
        script_at = next(i for i, a in enumerate(argv) if a.endswith(".py"))
        for token in argv[script_at + 1:]:
            if token.startswith("--"):
                assert token[2:] in options, token
        for key, value in tomllib.loads(files["args.toml"]).items():
            option = options[key]
            assert option.kind != "positional"
            if option.kind == "flag":
                assert value is True, key


@pytest.mark.parametrize("stage", STAGES)
def test_plan_parses_in_a_stand_in_built_from_the_manifest(tmp_path, stage):
    """A real child process parses argv + args.toml with the manifest's options (as sd-scripts would)."""
    files = plan_files(tmp_path, stage)
    argv = json.loads(files["argv.json"])
    script_at = next(i for i, a in enumerate(argv) if a.endswith(".py"))
    script = Path(argv[script_at]).stem
    done = subprocess.run([sys.executable, str(REPO / "tests/plan/standin_parse.py"), script, *argv[script_at + 1:]],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])  # after the reader's log lines
    assert seen["learning_rate"] == (5e-5 if stage == "lora" else 4e-6)
    assert seen["mixed_precision"] == "bf16" and seen["optimizer_type"] == "Lion"


def test_stand_in_rejects_an_option_sd_scripts_lacks(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "tests/plan/standin_parse.py"), "sdxl_train", "--text_encoder_lr1", "1e-5"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_every_file_under_recipes_validates_and_plans(tmp_path):
    paths = sorted(RECIPES.rglob("*.toml"))
    assert len(paths) >= 3
    result = run_cli("validate", *map(str, paths))
    assert result.returncode == 0, result.stderr
    for path in paths:
        recipe = load_recipe(path)
        plan = make_plan(recipe, run_dir=tmp_path / recipe.name, workdir=Workdir(tmp_path / "w"), sd_scripts=tmp_path / "sd")
        assert shlex.split(plan.command_line) == plan.argv

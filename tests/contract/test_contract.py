"""Contract tier: generated plans go through sd-scripts' own code at the pinned commit.

    make test-contract SD_SCRIPTS=/path/to/sd-scripts SD_PYTHON=/path/to/its/python

Needs SWIMLATENT_SD_SCRIPTS (a checkout) and SWIMLATENT_SD_PYTHON (a Python with sd-scripts'
requirements); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, make_images, run_cli

pytestmark = pytest.mark.contract

SD_SCRIPTS = os.environ.get("SWIMLATENT_SD_SCRIPTS", "")
SD_PYTHON = os.environ.get("SWIMLATENT_SD_PYTHON", "")
PINNED = "48d368fa557731ad0488c07304dfeba8c07910eb"
PREFIX = "new, newest, masterpiece, best quality"


def _require_checkout() -> tuple[Path, str]:
    if not SD_SCRIPTS or not (Path(SD_SCRIPTS) / "sdxl_train.py").is_file():
        pytest.skip("contract tier: set SWIMLATENT_SD_SCRIPTS to an sd-scripts checkout (make test-contract SD_SCRIPTS=DIR)")
    if not SD_PYTHON or not Path(SD_PYTHON).exists():
        pytest.skip("contract tier: set SWIMLATENT_SD_PYTHON to a Python with sd-scripts' requirements")
    return Path(SD_SCRIPTS), SD_PYTHON


def _sd_check(plan_dir: Path) -> dict:
    checkout, python = _require_checkout()
    done = subprocess.run([python, str(REPO / "tests/contract/sd_check.py"), str(checkout), str(plan_dir)],
                          capture_output=True, text=True, timeout=900, cwd=plan_dir)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plan(tmp_path: Path, recipe: Path, dataset: str) -> Path:
    checkout, _ = _require_checkout()
    workdir = tmp_path / "work"
    make_images(workdir / "datasets" / dataset / "images", 3, caption=PREFIX + ", 1girl, solo, long hair")
    out = tmp_path / "plan"
    result = run_cli("--workdir", str(workdir), "--sd-scripts", str(checkout), "plan", str(recipe), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


SEED_COMMON = {"optimizer_type": "Lion", "lr_scheduler": "cosine_with_restarts", "min_snr_gamma": 5.0,
               "mixed_precision": "bf16"}


@pytest.mark.parametrize("stage,dataset,script,lr", [
    ("base", "danbooru-base", "sdxl_train.py", 4e-6),
    ("ft", "danbooru-ft", "sdxl_train.py", 4e-6),
    ("lora", "danbooru-lora", "sdxl_train_network.py", 5e-5),
])
def test_shipped_plan_is_accepted_by_sd_scripts(tmp_path, stage, dataset, script, lr):
    report = _sd_check(_plan(tmp_path, REPO / f"recipes/swim-in-latent/{stage}.toml", dataset))
    assert report["script"] == script
    assert report["unknown_config_keys"] == []
    args = report["args"]
    for key, value in SEED_COMMON.items():
        assert args[key] == value, key
    assert args["learning_rate"] == lr and isinstance(args["learning_rate"], float)
    assert args["save_model_as"] == "safetensors"
    subset = report["dataset"]["subsets"][0]
    assert subset["shuffle_caption"] is True and subset["caption_dropout_rate"] == 0.1
    assert subset["keep_tokens"] == 4 and subset["caption_extension"] == ".txt"
    assert report["dataset"]["num_train_images"] == 3
    assert all(caption.startswith(PREFIX) for caption in report["captions"].values())
    assert report["optimizer"] == "lion_pytorch.lion_pytorch.Lion"
    assert {(p["width"], p["height"]) for p in report["prompts"]} == {(1024, 1024)}
    assert report["launch"]["mixed_precision"] == "bf16"


def test_multi_machine_deepspeed_plan_is_accepted(tmp_path):
    recipe = tmp_path / "recipes" / "multi.toml"
    recipe.parent.mkdir()
    recipe.write_text(f'extends = "{REPO}/recipes/swim-in-latent/base.toml"\nname = "multi"\n'
                      '[launch]\nnum_processes = 8\nnum_machines = 2\nmachine_rank = 1\nmain_process_ip = "10.0.0.1"\n'
                      '[args]\ndeepspeed = true\nzero_stage = 2\noffload_optimizer_device = "cpu"\n')
    report = _sd_check(_plan(tmp_path, recipe, "danbooru-base"))
    assert report["launch"] == {"num_processes": 8, "num_machines": 2, "mixed_precision": "bf16", "multi_gpu": True}
    assert report["args"]["deepspeed"] is True and report["args"]["offload_optimizer_device"] == "cpu"


def test_committed_manifest_matches_the_checkout(tmp_path):
    checkout, python = _require_checkout()
    out = tmp_path / "manifest.json"
    done = subprocess.run([python, str(REPO / "tools/gen_option_manifest.py"), "--sd-scripts", str(checkout),
                           "--commit", os.environ.get("SWIMLATENT_SD_COMMIT", PINNED), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    committed = json.loads((REPO / "swimlatent_wrap/sdscripts/manifest.json").read_text())
    assert json.loads(out.read_text()) == committed


def test_sweep_command_is_accepted_by_sdxl_gen_img(tmp_path):
    """The sweep's sdxl_gen_img.py command line goes through that script's own parser."""
    checkout, python = _require_checkout()
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "ft.toml").write_text(f'extends = "{REPO}/recipes/swim-in-latent/base.toml"\nname = "ft"\n')
    (recipes / "lora.toml").write_text(f'extends = "{REPO}/recipes/swim-in-latent/lora.toml"\nname = "lora"\n')
    result = run_cli("--workdir", str(tmp_path / "work"), "--sd-scripts", str(checkout), "sweep", str(recipes / "lora.toml"), "--dry-run")
    assert result.returncode == 0, result.stderr
    import shlex

    argv = shlex.split([line for line in result.stdout.splitlines() if not line.startswith("#")][0])
    probe = ("import sys, json; sys.path.insert(0, sys.argv[1]); import sdxl_gen_img; "
             "a = sdxl_gen_img.setup_parser().parse_args(sys.argv[2:]); "
             "print(json.dumps({'mul': a.network_mul, 'seq': a.sequential_file_name, 'sampler': a.sampler, 'bf16': a.bf16}))")
    done = subprocess.run([python, "-c", probe, str(checkout), *argv[2:]], capture_output=True, text=True, timeout=600, cwd=checkout)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"mul": [1.0], "seq": True, "sampler": "euler_a", "bf16": True}

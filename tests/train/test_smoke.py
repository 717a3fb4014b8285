"""`swimlatent smoke` against the stand-in sd-scripts (the real one: tests/real/test_smoke.py): the
whole stage chain a recipe needs, one step each in a throwaway workdir, one line per stage, and a
failing stage named with the script's own error while the stages after it are not run."""

from __future__ import annotations

import tomllib

from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.stages.smoke import chain, derived_recipe, images_per_step


def test_smoke_runs_every_stage_the_recipe_needs_and_leaves_the_workdir_alone(stages):
    lab = stages
    done = lab.cli("smoke", str(lab.recipes / "lora.toml"), timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("smoke: ")]
    assert [line.split(" (")[0] for line in lines] == ["smoke: base: ok", "smoke: ft: ok", "smoke: lora: ok"], lines
    assert "CPU (no CUDA GPU visible)" in done.stderr
    assert not (lab.workdir / "models").exists(), "smoke placed a model in the real workdir"
    assert not list((lab.workdir / "smoke").iterdir()), "the throwaway workdir was left behind"


def test_smoke_names_the_failing_stage_and_its_cause_and_skips_the_rest(stages):
    lab = stages
    done = lab.cli("smoke", str(lab.recipes / "lora.toml"), timeout=120, STANDIN_FAIL="3")
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if line.startswith("smoke: ")]
    assert lines[0].startswith("smoke: base: failed") and "RuntimeError: stand-in told to fail" in lines[0], lines
    assert lines[1:] == ["smoke: ft: not run: needs base", "smoke: lora: not run: needs ft"]
    assert "Traceback" not in done.stderr


def test_smoke_recipes_override_only_size_length_data_and_cpu_needs(stages, tmp_path):
    lab = stages
    recipes = chain(load_recipe(lab.recipes / "lora.toml"))
    assert [r.name for r in recipes] == ["base", "ft", "lora"]
    lora = recipes[-1]
    text = derived_recipe(lora, model=None, data=tmp_path / "data", size=256, cpu=True, prompt_file=tmp_path / "p.txt")
    derived = tomllib.loads(text)
    assert derived["extends"] == str(lora.path) and derived["name"] == "lora" and "model" not in derived
    assert derived["dataset"] == {"name": "smoke-lora", "source": "folder", "path": str(tmp_path / "data")}
    assert derived["dataset_config"] == {"resolution": 256, "min_bucket_reso": 128, "max_bucket_reso": 512}
    assert derived["args"] == {"max_train_epochs": 1, "save_state": False, "max_data_loader_n_workers": 0,
                               "persistent_data_loader_workers": False}
    assert derived["sweep"]["ratios"] == [0.0, 1.0] and derived["merge"] == {"precision": "fp16"}
    assert images_per_step(lora) == 1

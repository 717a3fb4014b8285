"""`swimlatent smoke` with the real sd-scripts: a user's LoRA recipe trained for one step in a
throwaway workdir, and a recipe with a fault that only sd-scripts notices (validate accepts it)
reported in one line."""

from __future__ import annotations

import subprocess

import pytest

from tests.real.conftest import Lab

pytestmark = [pytest.mark.real, pytest.mark.timeout(1800)]


def user_recipe(lab: Lab, name: str, extra: str = "") -> str:
    path = lab.recipes / f"{name}.toml"
    path.write_text(f'extends = "lora.toml"\nname = "{name}"\nmodel = "{lab.checkpoint}"\n{extra}')
    return str(path)


def test_smoke_trains_a_users_recipe_for_one_step(lab: Lab):
    result = lab.cli("smoke", user_recipe(lab, "mylora"), row="smoke: a LoRA recipe, 1 step")
    assert result.returncode == 0, result.explain()
    assert result.stdout.strip().splitlines()[-1].startswith("smoke: mylora: ok"), result.stdout
    assert not list((lab.workdir / "smoke").iterdir()), "the throwaway workdir was left behind"
    assert not (lab.workdir / "models" / "mylora.safetensors").exists()  # nothing placed in the real workdir


def test_smoke_reports_a_fault_only_sd_scripts_notices_in_one_line(lab: Lab):
    recipe = user_recipe(lab, "faulty", '[args]\nnetwork_args = ["conv_dim=abc"]\n')
    checked = subprocess.run(lab.argv("validate", recipe), env=lab.env(), capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr  # a value only networks.lora itself reads
    result = lab.cli("smoke", recipe, row="smoke: a faulty recipe (fails)")
    assert result.returncode == 1, result.explain()
    lines = [line for line in result.stdout.strip().splitlines() if line.startswith("smoke: faulty")]
    assert len(lines) == 1, result.stdout
    assert "failed" in lines[0] and "ValueError: invalid literal for int() with base 10: 'abc'" in lines[0], lines[0]
    # sd-scripts' own traceback streams to the console and its log; none comes from the wrapper
    assert 'swimlatent_wrap/' not in "".join(l for l in result.stderr.splitlines(True) if l.lstrip().startswith("File "))

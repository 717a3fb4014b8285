"""Preflight's disk estimate for saved training states, against what real sd-scripts runs wrote.

Measured (real tier, random-weight SDXL, sd-scripts 48d368fa):
- base-24gb.toml (fp32 weights, Lion8bit): one `base-state/` of 12.88 GB: model.safetensors
  10 270 065 552 bytes (the U-Net in fp32) + 10 optimizer files of 2 611 076 770 bytes together;
- full_bf16 + Lion (the old base.toml): 10.3 GB (issue 9), which the old 2.2×-the-model rule put at 15.3 GB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.stages.effective import effective_args
from swimlatent_wrap.stages.plan import make_plan
from swimlatent_wrap.stages.preflight import SDXL_PARAMETERS, save_bytes, state_bytes
from swimlatent_wrap.workdir import Workdir
from tests.helpers import REPO

SHIPPED = REPO / "recipes" / "swim-in-latent"


def estimate(recipe_file: Path, tmp_path: Path, extra: str = ""):
    path = recipe_file
    if extra:
        path = tmp_path / "recipes" / "variant.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'extends = "{recipe_file}"\nname = "base"\n{extra}')
    plan = make_plan(load_recipe(path), run_dir=tmp_path / "run", workdir=Workdir(tmp_path / "w"), sd_scripts=tmp_path / "sd")
    args = effective_args(plan)
    return state_bytes(plan, args, dict(SDXL_PARAMETERS)), save_bytes(plan, args, dict(SDXL_PARAMETERS))


def test_state_of_the_24gb_variant_matches_the_measured_folder(tmp_path):
    state, save = estimate(SHIPPED / "base-24gb.toml", tmp_path)
    assert state == pytest.approx(10_270_065_552 + 2_611_076_770, rel=0.01)
    # saves keep the training dtype: fp32 U-Net, bf16 text encoders, fp32 VAE
    assert save == pytest.approx(2_567_463_684 * 4 + 817_720_321 * 2 + 83_653_863 * 4, rel=1e-9)


def test_state_of_full_bf16_lion_matches_the_measured_10_gb(tmp_path):
    state, _ = estimate(SHIPPED / "base.toml", tmp_path, "[args]\nfull_bf16 = true\n[checks]\nallow_rounded_updates = true\n")
    assert state == pytest.approx(10.3e9, rel=0.01)


def test_the_faithful_base_keeps_fp32_weights_and_fp32_lion_state(tmp_path):
    state, _ = estimate(SHIPPED / "base.toml", tmp_path)
    assert state == 2_567_463_684 * 8


def test_cpu_ram_floor_refuses_the_faithful_base_on_a_24_gb_machine_and_not_the_variant(tmp_path):
    from swimlatent_wrap.stages.preflight import cpu_training_bytes

    def floor(recipe_file):
        plan = make_plan(load_recipe(recipe_file), run_dir=tmp_path / "run", workdir=Workdir(tmp_path / "w"),
                         sd_scripts=tmp_path / "sd")
        return cpu_training_bytes(plan, effective_args(plan), dict(SDXL_PARAMETERS))

    assert floor(SHIPPED / "base.toml") > 24 * 2**30  # 3 × 10.3 GB of fp32 weights, gradients and Lion state
    assert 16e9 < floor(SHIPPED / "base-24gb.toml") < 19e9
    assert floor(SHIPPED / "lora.toml") < 12e9


def test_resuming_the_last_epoch_needs_one_save_and_one_state(tmp_path):
    """The resume that the old estimate refused: one epoch left, so no epoch save (sd-scripts skips
    the last epoch's), only the final model and the end-of-training state."""
    from swimlatent_wrap.stages.preflight import disk_needed

    path = tmp_path / "recipes" / "last.toml"
    path.parent.mkdir(parents=True)
    path.write_text(f'extends = "{SHIPPED / "ft-24gb.toml"}"\nname = "ft"\n[args]\nmax_train_epochs = 1\n')
    plan = make_plan(load_recipe(path), run_dir=tmp_path / "run", workdir=Workdir(tmp_path / "w"), sd_scripts=tmp_path / "sd")
    args = effective_args(plan)
    counts = dict(SDXL_PARAMETERS)
    assert disk_needed(plan, args, counts, 0) == save_bytes(plan, args, counts) + state_bytes(plan, args, counts)
    # the shipped 4 epochs, saving every epoch, keeping 2 models and 1 state: 3 epoch saves kept at
    # most 3 at once (2 + the new one) plus the final; 2 epoch states + the final state
    four = make_plan(load_recipe(SHIPPED / "ft-24gb.toml"), run_dir=tmp_path / "r4", workdir=Workdir(tmp_path / "w"),
                     sd_scripts=tmp_path / "sd")
    args4 = effective_args(four)
    assert disk_needed(four, args4, counts, 0) == 4 * save_bytes(four, args4, counts) + 3 * state_bytes(four, args4, counts)

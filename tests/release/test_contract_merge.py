"""Contract tier: the merge check against sd-scripts' real networks/sdxl_merge_lora.py.

    SWIMLATENT_SD_SCRIPTS=DIR SWIMLATENT_SD_PYTHON=PY pytest -m "contract and slow" tests/release

A random-weight SDXL checkpoint with the real key layout (tests/release/sdxl_random.py, built from
sd-scripts' own classes) and a LoRA over the U-Net's attention and some convs, every text-encoder
attention/MLP layer of both encoders, and one module that names no layer. sd-scripts merges them on
the CPU; the check must find every module's change (text encoder 2's fused q/k/v included), no
unexpected change, and name the planted module. Needs about 14 GB of disk in the temp folder and
about 24 GB of RAM (sd-scripts holds the models and the fp16 copy it saves); about 4 minutes on 2
cores. Precision fp16 keeps sd-scripts' memory at that.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = [pytest.mark.contract, pytest.mark.slow]

SD_SCRIPTS = os.environ.get("SWIMLATENT_SD_SCRIPTS", "")
SD_PYTHON = os.environ.get("SWIMLATENT_SD_PYTHON", "")


def test_real_sdxl_merge_lora_output_passes_the_check(tmp_path):
    if not SD_SCRIPTS or not (Path(SD_SCRIPTS) / "networks" / "sdxl_merge_lora.py").is_file():
        pytest.skip("contract tier: set SWIMLATENT_SD_SCRIPTS to an sd-scripts checkout")
    if not SD_PYTHON or not Path(SD_PYTHON).exists():
        pytest.skip("contract tier: set SWIMLATENT_SD_PYTHON to a Python with sd-scripts' requirements")
    from swimlatent_wrap.modelspec.safetensors_file import read_safetensors
    from swimlatent_wrap.release.merge import verify_merge

    checkout = Path(SD_SCRIPTS)
    base, lora, merged = tmp_path / "base.safetensors", tmp_path / "lora.safetensors", tmp_path / "merged.safetensors"
    env = {**os.environ, "PYTHONPATH": str(checkout / "networks")}
    made = subprocess.run([SD_PYTHON, str(REPO / "tests/release/sdxl_random.py"), str(base), str(lora)],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=1200)
    assert made.returncode == 0, made.stderr[-3000:]
    done = subprocess.run([SD_PYTHON, str(checkout / "networks" / "sdxl_merge_lora.py"), "--sd_model", str(base),
                           "--models", str(lora), "--ratios", "0.75", "--precision", "fp16", "--save_precision", "fp16",
                           "--save_to", str(merged)], cwd=checkout, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "COLUMNS": "300"})  # sd-scripts logs through rich, which wraps lines
    assert done.returncode == 0, done.stderr[-3000:]
    log = " ".join((done.stdout + done.stderr).split())
    assert "no module found for LoRA weight: lora_unet_not_a_layer" in log  # sd-scripts only logs it, and exits 0

    modules = [n[: -len(".lora_down.weight")] for n in read_safetensors(lora).tensors if n.endswith(".lora_down.weight")]
    te2_layers = {m.split("_layers_")[1].split("_")[0] for m in modules if m.startswith("lora_te2_")}
    one_to_one = [m for m in modules if m.startswith(("lora_unet_", "lora_te1_")) and m != "lora_unet_not_a_layer"]
    assert te2_layers and one_to_one

    check = verify_merge(base, lora, merged)
    assert check.missing_target == ["lora_unet_not_a_layer"]
    assert check.unchanged == [] and check.unexpected == []
    # one tensor per U-Net/te1 module; per te2 layer, 6 modules write 4 tensors (q/k/v fused)
    assert len(check.changed) == len(one_to_one) + 4 * len(te2_layers)

"""GPU tier: real sd-scripts, real SDXL checkpoint, a few steps of each stage at low resolution,
then an interrupted base stage resumed.

    make test-gpu   with
      SWIMLATENT_SD_SCRIPTS     an sd-scripts checkout (its requirements installed: make setup)
      SWIMLATENT_GPU_CHECKPOINT an SDXL 1.0 single-file checkpoint (.safetensors)
      SWIMLATENT_SD_PYTHON      optional: the Python with sd-scripts' requirements (default: this one)
      SWIMLATENT_GPU_TOKENIZERS optional: a --tokenizer_cache_dir filled by an earlier run, for
                                machines without network (else sd-scripts downloads the two CLIP
                                tokenizers on the first run)
Skipped, with the reason, when any of these is missing or no CUDA GPU is visible.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from swimlatent_wrap.modelspec.safetensors_file import read_safetensors
from swimlatent_wrap.stages.verify import sha256_file

pytestmark = pytest.mark.gpu

CAPTION = "new, newest, masterpiece, best quality, 1girl, solo, smile"


def _require() -> dict[str, str]:
    sd = os.environ.get("SWIMLATENT_SD_SCRIPTS", "")
    checkpoint = os.environ.get("SWIMLATENT_GPU_CHECKPOINT", "")
    python = os.environ.get("SWIMLATENT_SD_PYTHON") or sys.executable
    if not sd or not (Path(sd) / "library" / "train_util.py").is_file():
        pytest.skip("gpu tier: set SWIMLATENT_SD_SCRIPTS to a real sd-scripts checkout with its requirements installed")
    if not checkpoint or not Path(checkpoint).is_file():
        pytest.skip("gpu tier: set SWIMLATENT_GPU_CHECKPOINT to an SDXL 1.0 .safetensors checkpoint")
    probe = subprocess.run([python, "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"],
                           capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"gpu tier: no CUDA GPU visible to {python} ({(probe.stderr.strip().splitlines() or ['torch says no'])[-1]})")
    return {"sd": sd, "checkpoint": checkpoint, "python": python}


def _images(folder: Path, count: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (512, 512), (40 * index % 256, 120, 200)).save(folder / f"g{index}.png")
        (folder / f"g{index}.txt").write_text(CAPTION + "\n")


def _setup(tmp_path: Path, need: dict[str, str]) -> tuple[Path, dict[str, str]]:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "prompts.txt").write_text("1girl, solo, smile\n")
    for name, count in (("base", 4), ("ft", 3), ("lora", 2)):
        _images(tmp_path / "data" / name, count)
    common_args = textwrap.dedent("""\
        optimizer_type = "Lion"
        lr_scheduler = "cosine_with_restarts"
        min_snr_gamma = 5.0
        mixed_precision = "bf16"
        gradient_checkpointing = true
        sdpa = true
        cache_latents = true
        no_half_vae = true
        max_train_steps = 2
        save_every_n_steps = 1
        save_state = true
        save_precision = "fp16"
        seed = 42
        max_data_loader_n_workers = 0
    """)
    (recipes / "base.toml").write_text(textwrap.dedent(f"""\
        name = "base"
        script = "sdxl_train"
        model = "{need['checkpoint']}"
        [dataset]
        name = "gpu-base"
        source = "folder"
        path = "{tmp_path / 'data' / 'base'}"
        [captions]
        prefix = ["new", "newest", "masterpiece", "best quality"]
        [dataset_config]
        shuffle_caption = true
        caption_dropout_rate = 0.1
        resolution = 512
        batch_size = 1
        [launch]
        python = "{need['python']}"
        [sample]
        prompts = "prompts.txt"
        width = 512
        height = 512
        steps = 4
        every_n_epochs = 0
        every_n_steps = 2
        [args]
        learning_rate = 4e-6
        """) + common_args)
    (recipes / "ft.toml").write_text(textwrap.dedent(f"""\
        extends = "base.toml"
        name = "ft"
        model = "stage:base"
        [dataset]
        name = "gpu-ft"
        path = "{tmp_path / 'data' / 'ft'}"
        """))
    (recipes / "lora.toml").write_text(textwrap.dedent(f"""\
        extends = "ft.toml"
        name = "lora"
        script = "sdxl_train_network"
        model = "stage:ft"
        [dataset]
        name = "gpu-lora"
        path = "{tmp_path / 'data' / 'lora'}"
        [args]
        learning_rate = 5e-5
        network_module = "networks.lora"
        network_dim = 4
        network_alpha = 2.0
        network_train_unet_only = true
        full_bf16 = false
        """))
    workdir = tmp_path / "work"
    tokenizers = os.environ.get("SWIMLATENT_GPU_TOKENIZERS")
    if tokenizers:
        shutil.copytree(tokenizers, workdir / "cache" / "tokenizers")
    env = dict(os.environ, SWIMLATENT_WORKDIR=str(workdir), SWIMLATENT_SD_SCRIPTS=need["sd"])
    return recipes, env


def _cli(env, *argv: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swimlatent_wrap", *argv], env=env, timeout=timeout,
                          capture_output=True, text=True)


def test_each_stage_trains_for_real_and_an_interrupted_stage_resumes(tmp_path):
    need = _require()
    recipes, env = _setup(tmp_path, need)
    workdir = Path(env["SWIMLATENT_WORKDIR"])
    for stage, kind in (("base", "stable-diffusion-xl-v1-base"), ("ft", "stable-diffusion-xl-v1-base"),
                        ("lora", "stable-diffusion-xl-v1-base/lora")):
        done = _cli(env, "run", str(recipes / f"{stage}.toml"))
        assert done.returncode == 0, done.stderr[-6000:] + done.stdout[-6000:]
        model = workdir / "models" / f"{stage}.safetensors"
        assert read_safetensors(model).metadata["modelspec.architecture"] == kind
        runs = sorted((workdir / "runs" / stage).iterdir())
        assert list((runs[-1] / "output" / "sample").glob("*.png")), "no sample images under the run folder"
    ft_sha = sha256_file(workdir / "models" / "ft.safetensors")
    assert read_safetensors(workdir / "models" / "lora.safetensors").metadata["ss_new_sd_model_hash"] == ft_sha

    # interrupt base after its first saved state, then resume it
    recipe = recipes / "base.toml"
    recipe.write_text(recipe.read_text().replace("max_train_steps = 2", "max_train_steps = 4"))
    good = sha256_file(workdir / "models" / "base.safetensors")
    before = set((workdir / "runs" / "base").iterdir())
    proc = subprocess.Popen([sys.executable, "-m", "swimlatent_wrap", "train", str(recipe)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 1500
    state = None
    while time.monotonic() < deadline and proc.poll() is None and state is None:
        for run in set((workdir / "runs" / "base").iterdir()) - before:
            if (run / "output" / "base-step00000001-state" / "random_states_0.pkl").is_file():
                state = run / "output" / "base-step00000001-state"
        time.sleep(1)
    assert state is not None, "no state was saved"
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode in (130, 1), err[-4000:]  # interrupted (or finished its step and failed to stop cleanly)
    assert sha256_file(workdir / "models" / "base.safetensors") == good
    done = _cli(env, "train", str(recipe), "--resume")
    assert done.returncode == 0, done.stderr[-6000:]
    import json

    record = json.loads(sorted((workdir / "runs" / "base").iterdir())[-1].joinpath("run.json").read_text())
    assert record["status"] == "ok" and record["resume"]["done_steps"] >= 1
    assert record["resume"]["state"].startswith(str(state.parent.parent))
    assert record["host"]["gpu"]

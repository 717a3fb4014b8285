"""Fixtures for the training-stage tests: a fake sd-scripts checkout and accelerate launcher (real
child processes, parsers from the option manifest), tiny datasets and checkpoints, recipes for
the three stages, and the `swimlatent` CLI run as a child process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.train import standin_lib
from tests.train.standins import make_fake_accelerate, make_fake_sd_scripts, make_sdxl_checkpoint, tracked_value

CAPTION = "new, newest, masterpiece, best quality, 1girl, solo"
FAKE_TORCH = '''\
"""stand-in torch for preflight tests: only what the CUDA probe asks."""
import os
__version__ = "0.0+standin"
class version:
    cuda = os.environ.get("STANDIN_TORCH_CUDA") or None
class cuda:
    @staticmethod
    def is_available():
        return bool(os.environ.get("STANDIN_TORCH_CUDA"))
    @staticmethod
    def device_count():
        return 1 if os.environ.get("STANDIN_TORCH_CUDA") else 0
    @staticmethod
    def get_device_name(i):
        return "Stand-in GPU"
'''


@pytest.fixture(scope="session")
def tools(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tools")
    sd = make_fake_sd_scripts(root / "sd-scripts")
    launchers = make_fake_accelerate(root / "pythonpath")
    torch_dir = root / "fake-torch"
    (torch_dir / "torch").mkdir(parents=True)
    (torch_dir / "torch" / "__init__.py").write_text(FAKE_TORCH)
    checkpoint = make_sdxl_checkpoint(root / "sdxl-tiny.safetensors")
    return {"sd": sd, "pythonpath": launchers, "torch": torch_dir, "checkpoint": checkpoint}


def write_images(folder: Path, count: int, caption: str | None = CAPTION, prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"{prefix}{index:03d}.png"
        path.write_bytes(standin_lib.tiny_png())
        if caption is not None:
            path.with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
        paths.append(path)
    return paths


@dataclass
class Lab:
    root: Path
    tools: dict[str, Path]

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def recipes(self) -> Path:
        return self.root / "recipes"

    def model(self, stage: str) -> Path:
        return self.workdir / "models" / f"{stage}.safetensors"

    def runs(self, stage: str) -> list[Path]:
        folder = self.workdir / "runs" / stage
        return sorted((p for p in folder.iterdir() if (p / "run.json").is_file()), key=lambda p: p.name) if folder.is_dir() else []

    def record(self, stage: str, index: int = -1) -> dict:
        return json.loads((self.runs(stage)[index] / "run.json").read_text())

    def recipe(self, name: str, text: str) -> Path:
        path = self.recipes / f"{name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("@CHECKPOINT@", str(self.tools["checkpoint"]))
                        .replace("@ROOT@", str(self.root)), encoding="utf-8")
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STANDIN_", "SWIMLATENT_"))}
        env.update(
            PYTHONPATH=os.pathsep.join([str(self.tools["pythonpath"]), str(REPO)]),
            SWIMLATENT_WORKDIR=str(self.workdir),
            SWIMLATENT_SD_SCRIPTS=str(self.tools["sd"]),
            HF_HUB_OFFLINE="1",
        )
        env.update(extra)
        return env

    def cli(self, *argv: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "swimlatent_wrap", *argv], capture_output=True, text=True,
                              cwd=self.root, env=self.env(**env), timeout=timeout)

    def start(self, *argv: str, **env: str) -> subprocess.Popen:
        """`swimlatent ARGV` in its own session, with Python's default Ctrl-C handling (a test runner
        started in the background may have SIGINT ignored, which a child would inherit)."""
        return subprocess.Popen([sys.executable, "-m", "swimlatent_wrap", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.root, env=self.env(**env),
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def wait_for_log(self, stage: str, text: str, timeout: float = 120) -> Path:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for run in self.runs(stage)[-1:]:
                log = run / "log"
                if log.is_file() and text in log.read_text(errors="replace"):
                    return run
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared in the log of stage {stage}")

    def steps_in(self, path: Path) -> float:
        return tracked_value(path)


@pytest.fixture
def lab(tmp_path, tools) -> Lab:
    return Lab(tmp_path, tools)


@pytest.fixture(scope="session")
def built_tokenizers(tmp_path_factory) -> Path:
    """Both CLIP tokenizer folders, built once from open_clip's BPE file (preflight refuses to train
    without them, as sd-scripts would otherwise download them)."""
    from swimlatent_wrap.stages.tokenizers import build_from_bpe
    from tests.tokenizers import bpe_file

    cache = tmp_path_factory.mktemp("tokenizers") / "cache"
    build_from_bpe(bpe_file(), cache)
    return cache


@pytest.fixture(autouse=True)
def _lab_tokenizer_cache(request) -> None:
    """Every test with a lab gets <workdir>/cache/tokenizers filled (hard links: the wrapper replaces
    files by rename, never in place); a test of an empty cache removes it."""
    if "lab" in request.fixturenames:
        lab, built = request.getfixturevalue("lab"), request.getfixturevalue("built_tokenizers")
        shutil.copytree(built, lab.workdir / "cache" / "tokenizers", copy_function=os.link)


BASE_RECIPE = """\
    name = "base"
    script = "sdxl_train"
    model = "@CHECKPOINT@"

    [dataset]
    name = "base-set"
    source = "folder"
    path = "@ROOT@/data/base"

    [captions]
    prefix = ["new", "newest", "masterpiece", "best quality"]

    [dataset_config]
    shuffle_caption = true
    caption_dropout_rate = 0.1
    resolution = 1024
    batch_size = 1

    [args]
    optimizer_type = "Lion"
    learning_rate = 4e-6
    lr_scheduler = "cosine_with_restarts"
    lr_scheduler_num_cycles = 2
    lr_warmup_steps = 0.1
    min_snr_gamma = 5.0
    mixed_precision = "bf16"
    max_train_epochs = 3
    save_every_n_epochs = 1
    save_state = true
    save_precision = "fp16"
    seed = 42

    [sample]
    prompts = "prompts.txt"
    every_n_epochs = 1
"""

FT_RECIPE = """\
    extends = "base.toml"
    name = "ft"
    model = "stage:base"

    [dataset]
    name = "ft-set"
    path = "@ROOT@/data/ft"
"""

LORA_RECIPE = """\
    extends = "ft.toml"
    name = "lora"
    script = "sdxl_train_network"
    model = "stage:ft"

    [dataset]
    name = "lora-set"
    path = "@ROOT@/data/lora"

    [args]
    learning_rate = 5e-5
    network_module = "networks.lora"
    network_dim = 4
    network_alpha = 2.0
    network_train_unet_only = true
    full_bf16 = false
    max_train_epochs = 4
"""


@pytest.fixture
def stages(lab) -> Lab:
    """Recipes base → ft → lora (stand-in sized: 4, 3 and 2 images) with their datasets."""
    (lab.recipes).mkdir(parents=True, exist_ok=True)
    (lab.recipes / "prompts.txt").write_text("1girl, solo, smile\n# a comment\nscenery, sky\n")
    write_images(lab.root / "data" / "base", 4)
    write_images(lab.root / "data" / "ft", 3)
    write_images(lab.root / "data" / "lora", 2)
    lab.recipe("base", BASE_RECIPE)
    lab.recipe("ft", FT_RECIPE)
    lab.recipe("lora", LORA_RECIPE)
    return lab

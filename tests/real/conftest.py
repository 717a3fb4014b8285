"""The real tier (`make test-real`): the real sd-scripts at the pinned commit, in its own CPU venv,
trains every stage of the shipped recipes through the `swimlatent` CLI.

What the tier needs and where it comes from:
- sd-scripts and its Python: `SWIMLATENT_SD_SCRIPTS` / `SWIMLATENT_SD_PYTHON`, set by
  tools/real_tier_env.sh (the Makefile runs it first);
- an SDXL checkpoint: random weights in sd-scripts' own key layout (tests/release/sdxl_random.py,
  ~7 GB, cached under build/real/cache by the generator's hash);
- tokenizers: built offline by `swimlatent tokenizers --from-bpe` from the CLIP vocabulary that
  open-clip-torch ships;
- a tiny captioned dataset the tests draw.

SWIMLATENT_REAL_KEEP=1 keeps the lab (build/real/lab) afterwards and reuses a kept one, so a
developer can rerun one test (`-k lora`) on the models an earlier run left.

Stages run one at a time, each under a memory watchdog (tests/real/watchdog.py) that stops the
process tree past SWIMLATENT_REAL_LIMIT_GIB (default 21); the session ends with a table of wall
time, seconds per step and peak RSS per stage (also written to build/real/table.txt).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from swimlatent_wrap.sdscripts.cpu import CPU_ARGS as _CPU_ARGS
from tests.helpers import REPO
from tests.real.watchdog import GIB, Watchdog

BUILD = REPO / "build" / "real"
SHIPPED = REPO / "recipes" / "swim-in-latent"
LIMIT_GIB = float(os.environ.get("SWIMLATENT_REAL_LIMIT_GIB", "21"))
CAPTION = "new, newest, masterpiece, best quality, 1girl, solo, smile, {}"

# What CPU needs on top of the shipped recipes: swimlatent_wrap.sdscripts.cpu.CPU_ARGS (declared
# once there, used by `smoke` too), and sampling off (a 1024 px, 28-step image per epoch costs
# minutes on CPU; the sweep draws for real).
CPU_ARGS = "".join(f"{key} = {str(value).lower()}\n" for key, value in _CPU_ARGS.items())


@dataclass
class Row:
    stage: str
    wall_s: float
    per_step_s: float | None
    peak_gib: float  # RSS of the process tree
    anonymous_gib: float  # RSS less file-backed pages: what the 21 GiB limit applies to
    note: str = ""


ROWS: list[Row] = []


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    lines = ["", f"real tier: one row per CLI run, sub-rows per sd-scripts program ({os.cpu_count()} cores; peak memory "
             "of the whole process tree: RSS, and its anonymous part, which the limit applies to)",
             f"{'stage':<34} {'wall s':>7} {'s/step':>7} {'RSS GiB':>8} {'anon GiB':>8}  note",
             f"{'-' * 34} {'-' * 7} {'-' * 7} {'-' * 8} {'-' * 8}  ----"]
    for row in ROWS:
        per_step = f"{row.per_step_s:.0f}" if row.per_step_s else "-"
        lines.append(f"{row.stage:<34} {row.wall_s:>7.0f} {per_step:>7} {row.peak_gib:>8.2f} {row.anonymous_gib:>8.2f}  {row.note}")
    text = "\n".join(lines) + "\n"
    terminalreporter.write(text)
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / "table.txt").write_text(text)


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak: int
    peak_anonymous: int
    killed: bool
    phases: dict = field(default_factory=dict)  # sd-scripts program → watchdog.Phase

    @property
    def per_step_s(self) -> float | None:
        """tqdm's last rate in sd-scripts' own progress bar ("148.80s/it" or "1.25it/s")."""
        text = self.stdout + self.stderr
        rates = re.findall(r"steps:[^\n\r]*?([\d.]+)(s/it|it/s)", text)
        if not rates:
            return None
        value, unit = rates[-1]
        return float(value) if unit == "s/it" else 1.0 / float(value)

    def explain(self) -> str:
        return (f"exit {self.returncode}{' (killed by the memory watchdog)' if self.killed else ''}; "
                f"stderr tail:\n{self.stderr[-4000:]}\nstdout tail:\n{self.stdout[-3000:]}")


@dataclass
class Lab:
    root: Path
    sd_scripts: Path
    sd_python: Path
    checkpoint: Path
    workdir: Path = field(init=False)
    recipes: Path = field(init=False)
    data: Path = field(init=False)
    last_row: Row | None = None  # the table row of the latest `cli(..., row=...)`

    def __post_init__(self) -> None:
        self.workdir, self.recipes, self.data = self.root / "work", self.root / "recipes", self.root / "data"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SWIMLATENT_WORKDIR=str(self.workdir), SWIMLATENT_SD_SCRIPTS=str(self.sd_scripts),
                   COLUMNS="300", PYTHONUNBUFFERED="1")
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "swimlatent_wrap", *args]

    def start(self, *args: str, stdout=subprocess.PIPE) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=self.env(), stdout=stdout, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, cwd=self.root)

    def cli(self, *args: str, row: str | None = None, note: str = "", timeout: float = 1800) -> Result:
        """Run the CLI to completion under the memory watchdog; record a table row if ``row``."""
        started = time.monotonic()
        process = self.start(*args)
        dog = Watchdog(process.pid, int(LIMIT_GIB * GIB)).start()
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        finally:
            dog.stop()
        result = Result(list(args), process.returncode, stdout, stderr, time.monotonic() - started, dog.peak,
                        dog.peak_anonymous, dog.killed, dict(dog.phases))
        if row:
            self.last_row = Row(row, result.wall_s, result.per_step_s, result.peak / GIB, result.peak_anonymous / GIB, note)
            ROWS.append(self.last_row)
            if len(result.phases) > 1:  # e.g. `run` on a LoRA: train, sweep and merge, each its own row
                for program, phase in result.phases.items():
                    per_step = result.per_step_s if program.startswith("sdxl_train") else None
                    ROWS.append(Row(f"  {program}", phase.seconds, per_step, phase.peak / GIB, phase.peak_anonymous / GIB))
        assert not result.killed, f"{' '.join(args)}: over the {LIMIT_GIB} GiB memory limit; " + result.explain()
        return result

    def runs(self, stage: str) -> list[Path]:
        folder = self.workdir / "runs" / stage
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def record(self, run_dir: Path) -> dict:
        return json.loads((run_dir / "run.json").read_text())

    def sd(self, code: str, *args: str, timeout: float = 600) -> str:
        """Run ``code`` with sd-scripts' Python (torch, tensorboard); its stdout."""
        done = subprocess.run([str(self.sd_python), "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                              cwd=self.sd_scripts)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout


def _need(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value or not Path(value).exists():
        pytest.skip(f"real tier: {variable} is not set (run `make test-real`, which builds sd-scripts' CPU environment)")
    return Path(value)


def _checkpoint(sd_scripts: Path, sd_python: Path) -> Path:
    generator = REPO / "tests" / "release" / "sdxl_random.py"
    key = hashlib.sha256(generator.read_bytes()).hexdigest()[:12]
    target = BUILD / "cache" / f"sdxl-random-{key}.safetensors"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob("sdxl-random-*.safetensors*"):
        stale.unlink()
    partial = target.with_name(target.name + ".part")
    from swimlatent_wrap.sdscripts.cpu import environment

    env = environment(dict(os.environ))
    env["PYTHONPATH"] += os.pathsep + str(sd_scripts / "networks")  # sdxl_random.py imports networks/lora.py
    done = subprocess.run([str(sd_python), str(generator), str(partial)], cwd=sd_scripts, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    partial.rename(target)
    return target


def bpe_vocabulary() -> Path:
    """The CLIP BPE merges file open-clip-torch ships (installed without its dependencies)."""
    spec = importlib.util.find_spec("open_clip")
    assert spec is not None and spec.submodule_search_locations, "open-clip-torch is not installed (make venv installs it)"
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    assert path.is_file(), f"no {path}"
    return path


def draw_images(folder: Path, count: int, seed: int, size: int = 256) -> list[Path]:
    """Smooth colour fields with a few shapes: decodable, captioned, different from each other."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    words = ["outdoors", "sky", "city", "night", "flower", "water"]
    paths = []
    for index in range(count):
        y, x = np.mgrid[0:size, 0:size] / size
        colour = rng.random(3)
        pixels = np.stack([colour[c] * (0.5 + 0.5 * np.sin(6 * x * (c + 1) + 4 * y)) for c in range(3)], -1)
        image = Image.fromarray((pixels * 255).astype("uint8"))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x0, y0 = rng.integers(0, size // 2, 2)
            draw.ellipse([int(x0), int(y0), int(x0) + size // 3, int(y0) + size // 3], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        path = folder / f"img{index:02d}.png"
        image.save(path)
        path.with_suffix(".txt").write_text(CAPTION.format(words[(seed + index) % len(words)]) + "\n")
        paths.append(path)
    return paths


def write_recipes(lab: Lab) -> None:
    """Small recipes that `extends` the shipped ones, overriding only what a CPU needs: the model,
    the size, the number of steps, no sampling, memory options, and for the LoRA a small sweep."""
    launch = f'[launch]\npython = "{lab.sd_python}"\nnum_cpu_threads_per_process = {os.cpu_count() or 2}\n'
    buckets = "resolution = 256\nmin_bucket_reso = 128\nmax_bucket_reso = 512\n"
    lab.recipes.mkdir(parents=True, exist_ok=True)
    (lab.recipes / "sweep-prompt.txt").write_text(CAPTION.format("outdoors") + "\n")

    def stage(name: str, shipped: str, top: str, args: str, tail: str = "") -> None:
        (lab.recipes / f"{name}.toml").write_text(
            f'extends = "{SHIPPED / shipped}"\nname = "{name}"\n{top}[dataset]\nname = "real-{name}"\nsource = "folder"\n'
            f'path = "{lab.data / name}"\n[dataset_config]\n{buckets}[args]\n{args}{CPU_ARGS}{launch}[sample]\n'
            f"every_n_epochs = 0\n{tail}")

    stage("base", "base-24gb.toml", f'model = "{lab.checkpoint}"\n',
          "max_train_epochs = 1            # 2 images, batch 1, no accumulation: 2 optimizer steps\n"
          "save_state = false              # disk: the ft stage is the one that saves and resumes a state\n")
    stage("ft", "ft-24gb.toml", "",
          "max_train_epochs = 2            # 1 image: 2 epochs of 1 step; a state is saved after epoch 1\n")
    stage("lora", "lora.toml", "", "max_train_epochs = 1            # 2 images: 2 steps\nsave_state = false\n",
          '[sweep]\nratios = [0.0, 1.0]\nseeds = [7]\nprompts = "sweep-prompt.txt"\nwidth = 256\nheight = 256\nsteps = 4\n'
          '[merge]\nprecision = "fp16"              # the merge runs in host RAM: fp32 would hold a 14 GB model\n')


@pytest.fixture(scope="session")
def lab() -> Lab:
    sd_scripts, sd_python = _need("SWIMLATENT_SD_SCRIPTS"), _need("SWIMLATENT_SD_PYTHON")
    root = BUILD / "lab"
    keep = bool(os.environ.get("SWIMLATENT_REAL_KEEP"))  # keep the lab afterwards, and reuse a kept one
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    assert keep or free > 60 * 1e9, f"real tier: {free / 1e9:.0f} GB free under {root}; it needs about 60 GB (models, states, merge)"
    the_lab = Lab(root, sd_scripts, sd_python, _checkpoint(sd_scripts, sd_python))
    for stage, count, seed in (("base", 2, 1), ("ft", 1, 2), ("lora", 2, 3)):
        if not (the_lab.data / stage).is_dir():
            draw_images(the_lab.data / stage, count, seed)
    write_recipes(the_lab)
    filled = subprocess.run(the_lab.argv("tokenizers", "--from-bpe", str(bpe_vocabulary())), env=the_lab.env(),
                            capture_output=True, text=True, timeout=300)
    assert filled.returncode == 0, filled.stderr
    yield the_lab
    if not keep:
        shutil.rmtree(root, ignore_errors=True)

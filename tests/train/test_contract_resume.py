"""Contract tier for resuming sdxl_train.py: with sd-scripts' own code (parser, get_scheduler_fix)
and real torch, the options the wrapper adds on --resume give the remaining steps exactly the
learning rates of the uninterrupted schedule — and the naive resume (only max_train_steps reduced)
does not, which is why the wrapper does more than that.

    make test-contract SD_SCRIPTS=DIR SD_PYTHON=PY   (or: SWIMLATENT_SD_SCRIPTS=… SWIMLATENT_SD_PYTHON=… pytest -m contract tests/train)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import pytest

from swimlatent_wrap.stages import continued_schedule
from swimlatent_wrap.stages.resume import MODULE_NAME, continued_schedule_argv
from tests.helpers import REPO

pytestmark = pytest.mark.contract

SD_SCRIPTS = os.environ.get("SWIMLATENT_SD_SCRIPTS", "")
SD_PYTHON = os.environ.get("SWIMLATENT_SD_PYTHON", "")


def _require() -> tuple[Path, str]:
    if not SD_SCRIPTS or not (Path(SD_SCRIPTS) / "library" / "train_util.py").is_file():
        pytest.skip("contract tier: set SWIMLATENT_SD_SCRIPTS to a real sd-scripts checkout")
    if not SD_PYTHON or not Path(SD_PYTHON).exists():
        pytest.skip("contract tier: set SWIMLATENT_SD_PYTHON to a Python with sd-scripts' requirements")
    return Path(SD_SCRIPTS), SD_PYTHON


# Runs in sd-scripts' Python: the original schedule for T steps, interrupted after d; then a resume
# parsed by the real sdxl_train parser from the wrapper's options (+ --max_train_steps T-d), built
# by sd-scripts' get_scheduler_fix, loaded with the saved scheduler and optimizer state.
CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
spec = json.loads(sys.argv[2])
import torch
from accelerate.state import PartialState
PartialState()
import sdxl_train
from library import train_util

parser = sdxl_train.setup_parser()
base = ["--lr_scheduler", spec["scheduler"], "--lr_warmup_steps", spec["warmup"], "--lr_scheduler_num_cycles", str(spec["cycles"]),
        "--optimizer_type", "AdamW"]
T, d = spec["T"], spec["d"]

def make(argv):
    args = parser.parse_args(argv)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    return opt, train_util.get_scheduler_fix(args, opt, 1)

def run(opt, sched, n):
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    return lrs

opt, sched = make(base + ["--max_train_steps", str(T)])
full = run(opt, sched, T)
opt, sched = make(base + ["--max_train_steps", str(T)])
run(opt, sched, d)
saved = (opt.state_dict(), sched.state_dict())

def resumed(extra):
    opt, sched = make(base + ["--max_train_steps", str(T - d)] + extra)
    opt.load_state_dict(saved[0]); sched.load_state_dict(saved[1])
    return run(opt, sched, T - d)

print(json.dumps({"full": full, "wrapper": resumed(spec["extra"]), "naive": resumed([]),
                  "scheduler": type(make(base + ["--max_train_steps", str(T - d)] + spec["extra"])[1]).__name__}))
"""


@pytest.mark.parametrize("scheduler,warmup,cycles", [
    ("cosine_with_restarts", "0.1", 3),   # the seed's scheduler, warmup as a ratio of the total
    ("linear", "10", 1),
    ("constant_with_warmup", "10", 1),
    ("polynomial", "0", 1),
])
def test_resumed_schedule_matches_the_uninterrupted_one(tmp_path, scheduler, warmup, cycles):
    checkout, python = _require()
    module_dir = tmp_path / "resume"
    module_dir.mkdir()
    (module_dir / f"{MODULE_NAME}.py").write_text(Path(continued_schedule.__file__).read_text())
    args = argparse.Namespace(lr_scheduler=scheduler, lr_warmup_steps=float(warmup) if "." in warmup else int(warmup),
                              lr_decay_steps=0, lr_scheduler_num_cycles=cycles, lr_scheduler_power=1.0,
                              lr_scheduler_timescale=None, lr_scheduler_min_lr_ratio=None, lr_scheduler_type=None,
                              lr_scheduler_args=None, optimizer_type="AdamW")
    T, d = 100, 40
    spec = {"scheduler": scheduler, "warmup": warmup, "cycles": cycles, "T": T, "d": d, "extra": continued_schedule_argv(args, T)}
    env = dict(os.environ, PYTHONPATH=str(module_dir))
    done = subprocess.run([python, "-c", CHILD, str(checkout), json.dumps(spec)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["scheduler"] == "LambdaLR"
    expected = out["full"][d:]
    assert out["wrapper"] == pytest.approx(expected, abs=1e-12)
    if scheduler != "constant_with_warmup":  # past its warmup, a constant rate cannot be distorted
        assert out["naive"] != pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("stage", ["base", "lora"])
def test_a_resumed_run_folder_passes_sd_scripts_own_checks(stages, stage):
    """A real resumed run's argv.json/args.toml/dataset.toml (made against the stand-ins) through
    tests/contract/sd_check.py: sd-scripts' parser, config reader, verifiers, dataset builder and
    optimizer/scheduler factories, with the continued schedule on PYTHONPATH."""
    checkout, python = _require()
    lab = stages
    for before in {"base": [], "lora": ["base", "ft"]}[stage]:
        assert lab.cli("train", str(lab.recipes / f"{before}.toml"), "--allow-cpu").returncode == 0
    recipe = str(lab.recipes / f"{stage}.toml")
    assert lab.cli("train", recipe, "--allow-cpu", STANDIN_CRASH_AT_EPOCH="3").returncode == 1
    assert lab.cli("train", recipe, "--allow-cpu", "--resume").returncode == 0
    run = lab.runs(stage)[-1]
    env = dict(os.environ, PYTHONPATH=str(run / "resume"))
    done = subprocess.run([python, str(REPO / "tests/contract/sd_check.py"), str(checkout), str(run)], capture_output=True,
                          text=True, timeout=900, cwd=run, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["unknown_config_keys"] == []
    assert report["args"]["resume"].endswith(f"{stage}-000002-state")
    assert report["scheduler"] == "LambdaLR"
    if stage == "base":
        assert report["args"]["max_train_epochs"] == 1
        assert report["args"]["lr_scheduler_type"] == f"{MODULE_NAME}.continued_schedule"
    else:
        assert report["args"]["initial_step"] == 4 and report["args"]["max_train_epochs"] == 4

"""`swimlatent train` against stand-in sd-scripts scripts, as real child processes: success,
failures of every kind that must never replace a good model, Ctrl-C, resume, dry-run, preflight."""

from __future__ import annotations

import json
import os
import signal

import pytest

from swimlatent_wrap.modelspec.safetensors_file import read_safetensors
from swimlatent_wrap.stages.verify import sha256_file

ALLOW = "--allow-cpu"


def train(lab, stage: str, *more: str, **env: str):
    return lab.cli("train", str(lab.recipes / f"{stage}.toml"), ALLOW, *more, **env)


def good_base(lab) -> str:
    done = train(lab, "base")
    assert done.returncode == 0, done.stderr
    return sha256_file(lab.model("base"))


def test_success_places_a_verified_model_and_records_the_run(stages):
    lab = stages
    done = train(lab, "base")
    assert done.returncode == 0, done.stderr
    model = lab.model("base")
    info = read_safetensors(model)
    assert info.metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base"
    assert lab.steps_in(model) == 12  # 3 epochs × 4 images, batch 1
    [run] = lab.runs("base")
    assert not (run / "output" / "base.safetensors").exists()  # moved, not copied
    assert {"argv.json", "args.toml", "dataset.toml", "command.sh", "prompts.txt", "log", "run.json"} <= {p.name for p in run.iterdir()}
    # sample images from the recipe's prompts, written under the run folder
    samples = sorted((run / "output" / "sample").glob("base_e000003_*.png"))
    assert len(samples) == 2
    assert "--w 1024 --h 1024" in (run / "prompts.txt").read_text()

    record = lab.record("base")
    assert record["status"] == "ok" and record["exit_code"] == 0
    assert record["recipe"]["sha256"] and record["recipe"]["resolved"]["args"]["optimizer_type"] == "Lion"
    assert record["dataset"]["images"] == 4 and record["dataset"]["captioned"] == 4 and record["dataset"]["files_sha256"]
    assert record["input_model"]["sha256"] == sha256_file(lab.tools["checkpoint"])
    assert record["sd_scripts"]["pinned"] == "48d368fa557731ad0488c07304dfeba8c07910eb"
    assert record["argv"] == json.loads((run / "argv.json").read_text())
    assert record["argv"][1:3] == ["-m", "accelerate.commands.launch"]
    assert record["output"]["sha256"] == sha256_file(model)
    assert record["output"]["placed"] == str(model)
    assert record["schedule"] == {"total_steps": 12, "total_epochs": 3}
    assert record["started_at"] <= record["ended_at"]
    assert "gpu" in record["host"]
    assert "$ " + (run / "command.sh").read_text().strip() == (run / "log").read_text().splitlines()[0]


@pytest.mark.parametrize("env,status,message", [
    ({"STANDIN_FAIL": "3"}, "failed", "sdxl_train.py failed (exit code 1)"),
    ({"STANDIN_NO_OUTPUT": "1"}, "no_output", "sd-scripts exited 0 but wrote no model"),
    ({"STANDIN_CORRUPT_OUTPUT": "1"}, "invalid_output", "sd-scripts exited 0 but its output is not a usable model"),
    ({"STANDIN_CRASH_AT_EPOCH": "2"}, "failed", "sdxl_train.py failed"),
])
def test_a_failed_run_is_one_error_and_never_replaces_the_good_model(stages, env, status, message):
    lab = stages
    good = good_base(lab)
    done = train(lab, "base", **env)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors and message in errors[0], done.stderr
    assert sha256_file(lab.model("base")) == good
    record = lab.record("base")
    assert record["status"] == status and record["output"] is None and record["ended_at"]
    if status == "failed":
        assert any("  | " in line for line in errors)  # the log's last lines are in the error
        assert record["exit_code"] == 1
    if status == "no_output":
        assert "No data found" in done.stderr


def test_crash_mid_run_then_resume_trains_exactly_the_schedule(stages):
    lab = stages
    assert train(lab, "base", STANDIN_CRASH_AT_EPOCH="3").returncode == 1
    assert not lab.model("base").exists()
    preview = train(lab, "base", "--resume", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "--max_train_epochs 1" in preview.stdout.splitlines()[-1] and "# resume: " in preview.stdout
    assert len(lab.runs("base")) == 1
    done = train(lab, "base", "--resume")
    assert done.returncode == 0, done.stderr
    assert lab.steps_in(lab.model("base")) == 12  # 8 before the crash + the remaining 4, not 8 + 12
    record = lab.record("base")
    assert record["resume"]["done_epochs"] == 2 and record["resume"]["remaining_epochs"] == 1
    assert record["resume"]["state"].endswith("base-000002-state")
    argv = record["argv"]
    assert argv[argv.index("--max_train_epochs") + 1] == "1"
    assert argv[argv.index("--lr_scheduler_type") + 1] == "swimlatent_continued_schedule.continued_schedule"
    assert "total_steps=12" in argv and "warmup_steps=0.1" in argv and "num_cycles=2" in argv
    assert (lab.runs("base")[-1] / "resume" / "swimlatent_continued_schedule.py").is_file()
    assert record["schedule"] == {"total_steps": 12, "total_epochs": 3}


def test_resume_of_a_resumed_run_counts_from_the_start(stages):
    lab = stages
    recipe = lab.recipes / "base.toml"
    recipe.write_text(recipe.read_text().replace("max_train_epochs = 3", "max_train_epochs = 5"))
    assert train(lab, "base", STANDIN_CRASH_AT_EPOCH="3").returncode == 1  # epochs 1, 2 done
    assert train(lab, "base", "--resume", STANDIN_CRASH_AT_EPOCH="3").returncode == 1  # + 2 more: 4 done
    record = lab.record("base")
    assert record["offset"] == {"epochs": 2, "steps": 8}
    done = train(lab, "base", "--resume")
    assert done.returncode == 0, done.stderr
    assert lab.record("base")["resume"]["done_epochs"] == 4
    assert lab.steps_in(lab.model("base")) == 20  # 5 epochs × 4 steps


def test_resume_of_a_lora_passes_the_absolute_step(stages):
    lab = stages
    assert train(lab, "base").returncode == 0
    assert train(lab, "ft").returncode == 0
    assert train(lab, "lora", STANDIN_CRASH_AT_EPOCH="3").returncode == 1
    done = train(lab, "lora", "--resume")
    assert done.returncode == 0, done.stderr
    argv = lab.record("lora")["argv"]
    assert argv[argv.index("--initial_step") + 1] == "4"  # 2 epochs × 2 images
    assert "--max_train_epochs" not in argv  # sdxl_train_network skips done epochs itself
    assert lab.steps_in(lab.model("lora")) == 8  # 4 epochs × 2 images


@pytest.mark.parametrize("on_sigint", ["raise", "save"])
def test_ctrl_c_stops_the_trainer_keeps_the_good_model_and_resumes(stages, on_sigint):
    lab = stages
    good = good_base(lab)
    recipe = lab.recipes / "base.toml"
    if on_sigint == "save":  # no periodic state: the only state is the one saved on SIGINT
        recipe.write_text(recipe.read_text().replace("save_every_n_epochs = 1", "save_every_n_epochs = 10"))
    wrapper = lab.start("train", str(recipe), ALLOW, STANDIN_HANG_AT_EPOCH="3", STANDIN_ON_SIGINT=on_sigint)
    try:
        run = lab.wait_for_log("base", "waiting for SIGINT")
        os.kill(wrapper.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the wrapper's process group only
        out, err = wrapper.communicate(timeout=60)
    finally:
        if wrapper.poll() is None:
            os.killpg(wrapper.pid, signal.SIGKILL)
    assert wrapper.returncode == 130, err
    said = [line for line in err.splitlines() if "interrupted" in line]
    assert len(said) == 1 and "--resume" in said[0] and "Traceback" not in err, err  # one line, the stage's own
    assert said[0].startswith("swimlatent train: interrupted; ") and err.strip().splitlines()[-1] == said[0], err
    assert "sending SIGINT to the training process group" in (run / "log").read_text()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted"
    assert sha256_file(lab.model("base")) == good
    # nothing of the interrupted run is still running
    assert not [p for p in _processes_mentioning(str(run))]
    assert (run / "output" / "base-000002-state").is_dir()

    done = train(lab, "base", "--resume")
    assert done.returncode == 0, done.stderr
    assert lab.record("base")["resume"]["state"] == str(run / "output" / "base-000002-state")
    assert lab.steps_in(lab.model("base")) == 12


def _processes_mentioning(text: str):
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(text in part for part in process.info["cmdline"] or []):
                yield process
        except psutil.Error:
            continue


def test_resume_without_a_state_or_after_the_end_says_so(stages):
    lab = stages
    done = train(lab, "base", "--resume")
    assert done.returncode == 1 and "no saved training state for stage 'base'" in done.stderr
    assert train(lab, "base").returncode == 0
    done = train(lab, "base", "--resume")
    assert done.returncode == 1 and "nothing to resume" in done.stderr


def test_resume_needs_a_state_in_the_schedules_unit(stages):
    lab = stages
    recipe = lab.recipes / "base.toml"
    recipe.write_text(recipe.read_text().replace("max_train_epochs = 3", "max_train_steps = 12")
                      .replace("save_every_n_epochs = 1", "save_every_n_epochs = 1\nsave_every_n_steps = 5"))
    assert train(lab, "base", STANDIN_CRASH_AT_EPOCH="3").returncode == 1  # epoch states 1, 2; a step state at 5
    done = train(lab, "base", "--resume")
    assert done.returncode == 0, done.stderr
    record = lab.record("base")
    assert record["resume"]["done_steps"] == 5 and record["resume"]["state"].endswith("base-step00000005-state")
    argv = record["argv"]
    assert argv[argv.index("--max_train_steps") + 1] == "7"
    assert lab.steps_in(lab.model("base")) == 12


def test_dry_run_prints_the_launch_and_writes_nothing(stages):
    lab = stages
    done = train(lab, "base", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "accelerate.commands.launch" in done.stdout.splitlines()[-1]
    assert "# ---- " in done.stdout and "optimizer_type = \"Lion\"" in done.stdout
    assert not (lab.workdir / "runs").exists() and not lab.model("base").exists()


def test_one_training_run_per_stage_at_a_time(stages):
    lab = stages
    first = lab.start("train", str(lab.recipes / "base.toml"), ALLOW, STANDIN_HANG_AT_EPOCH="1")
    try:
        lab.wait_for_log("base", "waiting for SIGINT")
        second = train(lab, "base")
        assert second.returncode == 1
        assert f"another swimlatent run of stage 'base' is training now (pid {first.pid})" in second.stderr
        assert len(lab.runs("base")) == 1
        os.kill(first.pid, signal.SIGINT)
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert train(lab, "base").returncode == 0


def test_no_torch_for_sd_scripts_is_one_clear_line(stages):
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed in this Python; the no-torch message cannot be seen here")
    lab = stages
    done = lab.cli("train", str(lab.recipes / "base.toml"))  # sd-scripts' Python is this one: no torch
    assert done.returncode == 1
    [line] = [l for l in done.stderr.splitlines() if l.startswith("error: ")]
    assert "No module named 'torch'" in line and "make setup" in line and "collect, tag, plan" in line


def test_no_gpu_is_one_clear_line(stages):
    lab = stages
    done = lab.cli("train", str(lab.recipes / "base.toml"), PYTHONPATH=f"{lab.tools['torch']}{os.pathsep}{lab.tools['pythonpath']}")
    assert done.returncode == 1
    [line] = [l for l in done.stderr.splitlines() if l.startswith("error: ")]
    assert "no CUDA GPU visible" in line and "collect, tag, plan" in line
    assert "swimlatent smoke RECIPE" in line and "--allow-cpu" in line  # what can be done on this machine
    assert not lab.runs("base")
    # with a GPU (as the stand-in torch says), the GPU name lands in the run record
    done = lab.cli("train", str(lab.recipes / "base.toml"), STANDIN_TORCH_CUDA="12.4",
                   PYTHONPATH=f"{lab.tools['torch']}{os.pathsep}{lab.tools['pythonpath']}")
    assert done.returncode == 0, done.stderr
    assert lab.record("base")["host"]["gpu"] == "Stand-in GPU"


def test_preflight_reports_every_problem_at_once(stages, tmp_path):
    lab = stages
    for caption in (lab.root / "data" / "ft").glob("img00[01].txt"):
        caption.unlink()
    done = lab.cli("train", str(lab.recipes / "ft.toml"), ALLOW, "--sd-scripts", str(tmp_path / "no-sd-scripts"))
    assert done.returncode == 1
    errors = [l for l in done.stderr.splitlines() if l.startswith("error: ")]
    assert any("sd-scripts not found" in e and "SWIMLATENT_SD_SCRIPTS" in e for e in errors)
    assert any("2 of 3 images" in e and "swimlatent tag" in e for e in errors)
    assert any("stage 'base' has no verified output yet" in e for e in errors)
    assert not lab.runs("ft")


def test_an_empty_dataset_stops_before_sd_scripts(stages):
    lab = stages
    for path in (lab.root / "data" / "base").iterdir():
        path.unlink()
    done = train(lab, "base")
    assert done.returncode == 1 and "no images in" in done.stderr
    assert not lab.runs("base")


def test_a_broken_stage_input_is_refused(stages):
    lab = stages
    lab.model("base").parent.mkdir(parents=True)
    lab.model("base").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    done = train(lab, "ft")
    assert done.returncode == 1 and "model = stage:base" in done.stderr


def test_a_different_sd_scripts_commit_is_a_warning_with_both_hashes(stages, tmp_path):
    lab = stages
    import shutil
    import subprocess

    checkout = tmp_path / "sd-git"
    shutil.copytree(lab.tools["sd"], checkout)
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "stand-in"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    done = lab.cli("train", str(lab.recipes / "base.toml"), ALLOW, "--sd-scripts", str(checkout))
    assert done.returncode == 0, done.stderr
    warning = next(l for l in done.stderr.splitlines() if "commit" in l and "warning" in l)
    assert head in warning and "48d368fa557731ad0488c07304dfeba8c07910eb" in warning
    assert lab.record("base")["sd_scripts"]["commit"] == head


def test_sd_scripts_inside_another_repository_has_no_commit_of_its_own(stages, tmp_path):
    """An unpacked archive under some project's work tree: `git rev-parse HEAD` there answers the
    project's commit, which must not be taken for sd-scripts'."""
    lab = stages
    import shutil
    import subprocess

    project = tmp_path / "project"
    checkout = project / "build" / "sd-scripts"
    shutil.copytree(lab.tools["sd"], checkout)
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "the project"], check=True)
    done = lab.cli("train", str(lab.recipes / "base.toml"), ALLOW, "--sd-scripts", str(checkout))
    assert done.returncode == 0, done.stderr
    assert "cannot tell which sd-scripts commit" in done.stderr
    assert lab.record("base")["sd_scripts"]["commit"] is None

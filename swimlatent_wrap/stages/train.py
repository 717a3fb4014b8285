"""One training stage, for real: plan → preflight → input model → sd-scripts through the runner →
verify → place `models/<stage>.safetensors` → run record.

A run counts only if sd-scripts exited 0 AND the expected file exists and is a complete safetensors
model with the tensors the script saves (facts §0.9: an empty dataset exits 0 with no model). Only
then is it moved (one rename) to `models/<stage>.safetensors`; a failed, interrupted or empty run
leaves the model that was there untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from swimlatent_wrap import __version__, atomic, locks, runner
from swimlatent_wrap.errors import ReportedInterrupt, UserError
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.sdscripts.cpu import child_env as cpu_child_env
from swimlatent_wrap.sdscripts.manifest import load_manifest
from swimlatent_wrap.stages import record as records
from swimlatent_wrap.stages.effective import (
    EffectiveArgs,
    caption_extension,
    effective_args,
)
from swimlatent_wrap.stages.plan import Plan, make_plan, write_plan
from swimlatent_wrap.stages.preflight import preflight
from swimlatent_wrap.stages.resume import ResumePlan, plan_resume, total_steps_from_log
from swimlatent_wrap.stages.verify import file_identity, sha256_file, verify_model
from swimlatent_wrap.workdir import Workdir

if TYPE_CHECKING:
    from swimlatent_wrap.stages.hub import RemoteFile


def say(text: str) -> None:
    print(f"swimlatent: {text}", file=sys.stderr, flush=True)


@dataclass
class Prepared:
    plan: Plan
    argv: list[str]
    env_added: dict[str, str]
    resume: ResumePlan | None
    args: EffectiveArgs  # effective sd-scripts options
    sd_scripts: Path


def prepare(recipe: Recipe, *, run_dir: Path, workdir: Workdir, sd_scripts: Path, resume: bool,
            cpu: bool = False) -> Prepared:
    """The plan and the exact argv of this run, resume adjustments included; writes nothing.
    ``cpu``: add the environment an sd-scripts process needs on a CPU machine (sdscripts.cpu)."""
    plan = make_plan(recipe, run_dir=run_dir, workdir=workdir, sd_scripts=sd_scripts)
    resume_plan = None
    if resume:
        resume_plan = plan_resume(workdir=workdir, stage=recipe.name, script=recipe.script,
                                  output_name=plan.output_name, args=effective_args(plan))
        plan = make_plan(recipe, run_dir=run_dir, workdir=workdir, sd_scripts=sd_scripts, resume=resume_plan.state)
    extra = resume_plan.extra_argv if resume_plan else []
    env_added: dict[str, str] = {}
    if cpu:
        env_added.update(cpu_child_env())
    if resume_plan and resume_plan.pythonpath:
        paths = [env_added["PYTHONPATH"]] if "PYTHONPATH" in env_added else []
        env_added["PYTHONPATH"] = os.pathsep.join([str(plan.run_dir / resume_plan.pythonpath), *paths])
    return Prepared(plan=plan, argv=[*plan.argv, *extra], env_added=env_added, resume=resume_plan,
                    args=effective_args(plan, extra), sd_scripts=sd_scripts)


def child_env(added: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # sd-scripts prints through a pipe: stream it, keep it on a crash
    for key, value in added.items():
        env[key] = value + (os.pathsep + env[key] if env.get(key) else "")
    return env


def command_text(prepared: Prepared) -> str:
    env = [f"{k}={v}" for k, v in prepared.env_added.items()]
    return runner.format_command(["env", *env, *prepared.argv] if env else prepared.argv)


def print_dry_run(prepared: Prepared) -> None:
    for name, text in sorted(prepared.plan.files.items()):
        if name in ("argv.json", "command.sh"):
            continue
        print(f"# ---- {prepared.plan.run_dir / name}")
        print(text, end="" if text.endswith("\n") else "\n")
    if prepared.resume:
        for note in prepared.resume.notes:
            print(f"# resume: {note}")
    print(command_text(prepared))


def input_model(plan: Plan, workdir: Workdir, hub_remote: RemoteFile | None = None) -> dict[str, Any]:
    """Fetch/verify the model the stage starts from; what the record says about it."""
    ref = plan.recipe.model
    info: dict[str, Any] = {"ref": ref.text, "path": str(plan.model_path), "sha256": None}
    if ref.kind == "hf":
        from swimlatent_wrap.stages.hub import ensure_hub_file

        path, sha = ensure_hub_file(workdir, ref.repo_id, ref.filename, remote=hub_remote, asked=True)
        info.update(path=str(path), sha256=sha)
        if path.suffix == ".safetensors":
            verify_model(path, "sdxl_train", what=f"model {ref.text}")
    elif ref.kind == "stage":
        verify_model(plan.model_path, "sdxl_train", what=f"model {ref.text}")
        placed = records.placing_run(workdir, ref.stage, plan.model_path)
        if placed is not None:
            info.update(sha256=placed[1]["output"]["sha256"], from_run=str(placed[0]))
        else:
            say(f"warning: {plan.model_path} is not the output of a recorded run of stage {ref.stage!r}; hashing it")
            info["sha256"] = sha256_file(plan.model_path)
    elif plan.model_path.is_file():
        info["sha256"] = sha256_file(plan.model_path)
    return info


def place(output: Path, target: Path) -> None:
    """Move the verified output over ``target`` in one step (a rename within the workdir; a copy
    into a temp file beside ``target`` then a rename when they are on different filesystems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(output, target)
    except OSError as error:
        import errno
        import shutil

        if error.errno != errno.EXDEV:
            raise
        with atomic.atomic_open(target, "wb") as handle, open(output, "rb") as source:
            shutil.copyfileobj(source, handle, 16 * 1024 * 1024)
        output.unlink()


def _tail(log: Path, lines: int = 12) -> list[str]:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line.split("\r")[-1].rstrip() for line in text if line.strip()][-lines:]


@contextlib.contextmanager
def stage_lock(workdir: Workdir, recipe: Recipe) -> Iterator[None]:
    """One training run per stage at a time (two would race for the GPU and for models/<stage>), and
    the dataset held for reading meanwhile, so no collect, tag or select changes its images mid-run."""
    stage = recipe.name
    with locks.hold(workdir.stage_runs(stage), name=f"stage {stage!r}", doing="train",
                    busy=f"another swimlatent run of stage {stage!r} is training now", advice="wait for it, or stop it with Ctrl-C"):
        with locks.dataset(workdir.dataset_dir(recipe.dataset.name), doing=f"train {stage}", shared=True):
            yield


def start_record(recipe: Recipe, prepared: Prepared, checks: Any, model: dict[str, Any], extension: str | None, *,
                 allow_cpu: bool, inputs_digest: str | None) -> dict[str, Any]:
    """run.json as written when the run starts (status "running"). ``inputs_digest``:
    record.train_inputs_digest, what `swimlatent run` compares to skip or resume the stage."""
    manifest = load_manifest()
    plan = prepared.plan
    return {
        "format": records.FORMAT,
        "stage": recipe.name,
        "script": recipe.script,
        "status": "running",
        "started_at": records.now(),
        "ended_at": None,
        "exit_code": None,
        "error": None,
        "recipe": {"path": str(recipe.path), "chain": [str(p) for p in recipe.chain], "sha256": recipe.digest(),
                   "resolved": records.without_secrets(recipe.resolved())},
        "dataset": {"name": recipe.dataset.name, **records.dataset_digest(plan.image_dir, extension)},
        "input_model": model,
        "sd_scripts": {"path": str(prepared.sd_scripts), "commit": checks.sd_scripts_commit, "pinned": manifest.commit},
        "argv": runner.redact_argv(prepared.argv, runner.secret_values()),
        "env_added": prepared.env_added,
        "resume": prepared.resume.info if prepared.resume else None,
        "offset": prepared.resume.position if prepared.resume else {"epochs": 0, "steps": 0},
        "schedule": prepared.resume.schedule if prepared.resume else {"total_steps": None,
                                                                       "total_epochs": prepared.args.max_train_epochs},
        "host": {"gpu": checks.gpu, "torch": checks.torch, "python": plan.argv[0], "allow_cpu": allow_cpu},
        "inputs_digest": inputs_digest,
        "output": None,
        "wrapper_version": __version__,
    }


def train_stage(recipe: Recipe, *, workdir: Workdir, sd_scripts: Path, resume: bool = False, dry_run: bool = False,
                allow_cpu: bool = False) -> Path | None:
    """Train ``recipe``'s stage; the placed model (None for --dry-run). Its run.json records the
    inputs digest `swimlatent run` compares (record.train_inputs_digest), whichever command trained."""
    if dry_run:
        return _train(recipe, workdir=workdir, sd_scripts=sd_scripts, resume=resume, dry_run=True, allow_cpu=allow_cpu)
    with stage_lock(workdir, recipe):
        return _train(recipe, workdir=workdir, sd_scripts=sd_scripts, resume=resume, dry_run=False, allow_cpu=allow_cpu)


def _train(recipe: Recipe, *, workdir: Workdir, sd_scripts: Path, resume: bool, dry_run: bool, allow_cpu: bool) -> Path | None:
    run_dir = records.new_run_dir(workdir, recipe.name, create=not dry_run)
    try:
        prepared = prepare(recipe, run_dir=run_dir, workdir=workdir, sd_scripts=sd_scripts, resume=resume, cpu=allow_cpu)
    except BaseException:
        if not dry_run and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise
    plan = prepared.plan
    if dry_run:
        print_dry_run(prepared)
        return None
    if prepared.resume:
        for note in prepared.resume.notes:
            say(note)

    extension = caption_extension(plan)
    checks = preflight(plan, prepared.args, workdir=workdir, sd_scripts=sd_scripts, caption_extension=extension,
                       allow_cpu=allow_cpu)
    for warning in checks.warnings:
        say(f"warning: {warning}")
    try:
        checks.fail_if_any()
        model = input_model(plan, workdir, checks.hub_remote)
        # after input_model: a hub model's sha256 is known (verified) only once it is here
        inputs_digest = records.train_inputs_digest(recipe, workdir, sd_scripts)
        if checks.tokenizers_to_fetch is not None:
            from swimlatent_wrap.stages import tokenizers

            for folder in tokenizers.fetch(checks.tokenizers_to_fetch):
                say(f"tokenizer: {folder}")
    except BaseException:
        _discard(run_dir)
        raise

    write_plan(plan)
    for name, text in (prepared.resume.files.items() if prepared.resume else ()):
        atomic.write_text(plan.run_dir / name, text)
    # argv.json/command.sh say what is run: the plan plus the resume options.
    atomic.write_text(plan.run_dir / "argv.json", json.dumps(prepared.argv, indent=1, ensure_ascii=False) + "\n")
    atomic.write_text(plan.run_dir / "command.sh", command_text(prepared) + "\n")

    record = start_record(recipe, prepared, checks, model, extension, allow_cpu=allow_cpu, inputs_digest=inputs_digest)
    records.write_record(run_dir, record)
    log = run_dir / "log"
    say(f"run folder {run_dir}")

    def finish(status: str, **fields: Any) -> None:
        record.update(status=status, ended_at=records.now(), **fields)
        if not prepared.resume and record["schedule"].get("total_steps") is None:
            record["schedule"]["total_steps"] = total_steps_from_log(log)
        records.write_record(run_dir, record)

    target = workdir.model_path(recipe.name)
    try:
        runner.run(prepared.argv, log_path=log, cwd=run_dir, env=child_env(prepared.env_added),
                   env_shown=prepared.env_added)
    except runner.Interrupted as stop:
        finish("interrupted", exit_code=stop.returncode, error="interrupted (Ctrl-C or SIGTERM); the child was stopped")
        raise ReportedInterrupt(f"interrupted; {target} was not touched. Saved states are kept in {plan.output_dir}: "
                                f"`swimlatent train {recipe.path} --resume` goes on from the latest") from None
    except KeyboardInterrupt:  # as sd-scripts was being started, or just after it ended on its own
        finish("interrupted", error="interrupted (Ctrl-C) outside sd-scripts' own run (as it started or after it exited)")
        raise ReportedInterrupt(f"interrupted before sd-scripts' output was verified; {target} was not touched; run it "
                                f"again (--resume goes on from a saved state in {plan.output_dir}, if there is one)") from None
    except runner.RunFailed as failure:
        finish("failed", exit_code=failure.returncode, error=failure.lines[0])
        raise
    except BaseException as error:
        finish("failed", error=f"{type(error).__name__}: {error}")
        raise
    return _verify_and_place(recipe, prepared, workdir, log, finish)


def _verify_and_place(recipe: Recipe, prepared: Prepared, workdir: Workdir, log: Path,
                      finish: Callable[..., None]) -> Path:
    """sd-scripts exited 0: check its output, move it to models/<stage>.safetensors, record "ok".

    A Ctrl-C in here is told truly: before the move nothing was placed (and the record says
    "interrupted"); after it the model is in place, its record is completed, and the words say
    the training was done."""
    plan = prepared.plan
    expected = plan.output_file
    target = workdir.model_path(recipe.name)
    output: dict[str, Any] | None = None  # what run.json will say of the output, once it is verified
    recorded = False
    try:
        if not expected.is_file():
            finish("no_output", exit_code=0, error=f"no {expected}")
            raise UserError(
                f"sd-scripts exited 0 but wrote no model ({expected} is missing); it does that when it finds no training "
                f"data (\"No data found\"); full log: {log}",
                *[f"  | {line}" for line in _tail(log)],
            )
        try:
            info = verify_model(expected, recipe.script, network_module=getattr(prepared.args, "network_module", None))
        except UserError as error:
            finish("invalid_output", exit_code=0, error=error.lines[0])
            raise UserError(f"sd-scripts exited 0 but its output is not a usable model: {error.lines[0]}; "
                            f"{target} was not replaced; full log: {log}") from None
        sha = sha256_file(expected)
        output = {
            "file": str(expected), "placed": str(target), "sha256": sha, "size": info.size, "tensors": len(info.tensors),
            "metadata": {k: v for k, v in info.metadata.items()
                         if (k.startswith("modelspec.") or k in ("ss_steps", "ss_epoch", "sshs_model_hash")) and len(v) < 1000},
        }
        place(expected, target)
        output["placed_identity"] = file_identity(target)
        finish("ok", exit_code=0, output=output)
        recorded = True
        say(f"{recipe.name}: verified ({len(info.tensors)} tensors, sha256 {sha[:12]}…) and placed at {target}")
    except KeyboardInterrupt:
        if output is None or expected.exists():  # not moved yet (place() moves it in one rename)
            finish("interrupted", exit_code=0, error="interrupted (Ctrl-C) while its output was verified; nothing was placed")
            raise ReportedInterrupt(f"interrupted while sd-scripts' output was verified; {target} was not touched; the "
                                    f"trained file is left at {expected}") from None
        if not recorded:
            output["placed_identity"] = file_identity(target)
            finish("ok", exit_code=0, output=output)
        raise ReportedInterrupt(f"{recipe.name}: trained, verified and placed at {target}; the Ctrl-C came after that, "
                                f"so nothing of the training was lost") from None
    return target


def _discard(run_dir: Path) -> None:
    """A run that never started leaves no folder behind (nothing in it yet but what we made)."""
    import shutil

    if run_dir.is_dir() and not (run_dir / "log").exists():
        shutil.rmtree(run_dir, ignore_errors=True)

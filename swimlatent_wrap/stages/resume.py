"""`swimlatent train --resume`: find the latest complete training state of a stage and work out how
sd-scripts must be started so that the rest of the schedule — and only the rest — is trained.

sdxl_train_network.py (train_network.py at the pinned commit) resumes properly on its own: it
reads ``train_state.json`` and skips the epochs already done. Its own step count still starts at
0 in the resumed run, so the state of a *resumed* run holds a step count relative to that run; we
pass ``--initial_step`` with the absolute count, which sd-scripts prefers over train_state.json.

sdxl_train.py restarts its step count and trains the full schedule again (facts §0.14), and it
writes no train_state.json. We read the position from the state folder's name (facts §2:
``<name>-<epoch:06d>-state``, ``<name>-step<step:08d>-state``), plus the offset of the run that
saved it (a resumed run numbers its epochs from 1 again), and start sd-scripts with:
- ``--max_train_epochs`` (or ``--max_train_steps``) reduced to what remains, and
- the original learning-rate schedule (see continued_schedule.py): sd-scripts restores the
  scheduler's position, so without it a decaying schedule would be evaluated on a curve built for
  the shorter total and reach zero long before the end.
A state can only be used in the recipe's own unit: epoch states for a schedule in epochs
(``max_train_epochs``), step states for one in steps.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.stages import record as records
from swimlatent_wrap.stages.effective import EffectiveArgs
from swimlatent_wrap.workdir import Workdir

# accelerate's save_state writes model weights, optimizer, scheduler, sampler, then the RNG states
# last: a folder without them was cut off mid-save.
COMPLETE_MARKER = "random_states_0.pkl"
MODULE_NAME = "swimlatent_continued_schedule"
TOTAL_STEPS_LINE = re.compile(r"total optimization steps / 学習ステップ数: (\d+)")


@dataclass(frozen=True)
class State:
    path: Path
    run_dir: Path
    kind: str  # "epoch" | "step" | "end"
    local: int  # the number in the folder name (0 for "end")
    record: dict[str, Any] = field(repr=False, compare=False)


@dataclass
class ResumePlan:
    state: Path
    extra_argv: list[str]
    files: dict[str, str]  # relative to the run folder → text
    pythonpath: str | None  # relative to the run folder
    info: dict[str, Any]  # goes into run.json as "resume"
    position: dict[str, int]  # absolute epochs/steps done before this run (run.json "offset")
    schedule: dict[str, Any]  # the original schedule (run.json "schedule")
    notes: list[str]


def _state_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(name)}(?:-(?P<epoch>\d{{6}})|-step(?P<step>\d{{8}}))?-state$")


def states_of(run_dir: Path, output_name: str, record: dict[str, Any]) -> list[State]:
    output = run_dir / "output"
    if not output.is_dir():
        return []
    pattern = _state_pattern(output_name)
    found = []
    for folder in output.iterdir():
        match = pattern.match(folder.name)
        if not match or not folder.is_dir() or not (folder / COMPLETE_MARKER).is_file():
            continue
        if match.group("epoch"):
            found.append(State(folder, run_dir, "epoch", int(match.group("epoch")), record))
        elif match.group("step"):
            found.append(State(folder, run_dir, "step", int(match.group("step")), record))
        else:
            found.append(State(folder, run_dir, "end", 0, record))
    return found


def total_steps_from_log(log: Path) -> int | None:
    """The schedule length sd-scripts prints before its first step (sdxl_train.py / train_network.py:
    "total optimization steps / 学習ステップ数: N", after max_train_epochs has set it)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = TOTAL_STEPS_LINE.findall(text)
    return int(found[-1]) if found else None


def _offset(record: dict[str, Any]) -> dict[str, int]:
    offset = record.get("offset") or {}
    return {"epochs": int(offset.get("epochs") or 0), "steps": int(offset.get("steps") or 0)}


def _scheduler_kwargs(items: list[str] | None) -> dict[str, Any]:
    kwargs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        kwargs[key] = ast.literal_eval(value)
    return kwargs


def plan_resume(*, workdir: Workdir, stage: str, script: str, output_name: str, args: EffectiveArgs) -> ResumePlan:
    """``args``: the effective sd-scripts options of the new run (stages.effective)."""
    candidates: list[State] = []
    for run_dir, record in records.records(workdir, stage):
        candidates = states_of(run_dir, output_name, record)
        if candidates:
            break
    if not candidates:
        hint = ("the recipe saves none: set [args] save_state = true with save_every_n_epochs (or save_every_n_steps)"
                if not getattr(args, "save_state", False) else "no run of this stage got as far as its first save")
        raise UserError(f"no saved training state for stage {stage!r} under {workdir.stage_runs(stage)}: {hint}; "
                        f"run without --resume to start over")
    if script == "sdxl_train_network":
        return _network(candidates, args)
    return _finetune(candidates, args)


def _finish_check(candidates: list[State]) -> None:
    ends = [s for s in candidates if s.kind == "end"]
    if ends:
        raise UserError(f"the latest run of this stage trained its whole schedule ({ends[0].path} is its end state); "
                        f"nothing to resume — run without --resume to train again")


def _network(candidates: list[State], args: EffectiveArgs) -> ResumePlan:
    import json

    _finish_check(candidates)
    best, best_steps = None, -1
    for state in candidates:
        try:
            data = json.loads((state.path / "train_state.json").read_text(encoding="utf-8"))
            local_steps = int(data["current_step"])
        except (OSError, ValueError, KeyError):
            continue
        absolute = _offset(state.record)["steps"] + local_steps
        if absolute > best_steps:
            best, best_steps = state, absolute
    if best is None:
        raise UserError(f"no usable state in {candidates[0].run_dir / 'output'}: no train_state.json (sdxl_train_network.py writes one in every state)")
    total = args.max_train_steps  # before sd-scripts applies max_train_epochs; it re-derives that itself
    info = {"state": str(best.path), "from_run": str(best.run_dir), "done_steps": best_steps,
            "how": "sd-scripts skips the epochs already done; --initial_step gives the absolute step count"}
    return ResumePlan(state=best.path, extra_argv=["--initial_step", str(best_steps)], files={}, pythonpath=None, info=info,
                      position={"epochs": 0, "steps": best_steps}, schedule={"total_steps": None if args.max_train_epochs else total},
                      notes=[f"resuming from {best.path} ({best_steps} steps done); sd-scripts skips the finished epochs"])


def _finetune(candidates: list[State], args: EffectiveArgs) -> ResumePlan:
    _finish_check(candidates)
    by_epochs = args.max_train_epochs is not None
    unit = "epoch" if by_epochs else "step"
    usable = [s for s in candidates if s.kind == unit]
    if not usable:
        other = "step" if by_epochs else "epoch"
        raise UserError(
            f"the latest run saved only {other} states ({candidates[0].path.parent}), but the recipe's schedule counts "
            f"{'epochs (max_train_epochs)' if by_epochs else 'steps (max_train_steps)'}; sdxl_train.py restarts its count on "
            f"--resume, so the wrapper resumes it only from a state in the schedule's own unit: "
            f"save with save_every_n_{'epochs' if by_epochs else 'steps'}")
    state = max(usable, key=lambda s: s.local)
    offset = _offset(state.record)
    schedule = dict(state.record.get("schedule") or {})
    total_steps = schedule.get("total_steps")
    notes = []
    if by_epochs:
        total_epochs = int(args.max_train_epochs)
        if schedule.get("total_epochs") not in (None, total_epochs):
            raise UserError(f"the run being resumed trained for {schedule['total_epochs']} epochs, the recipe now says "
                            f"{total_epochs}; start over (without --resume) to train a different schedule")
        done_epochs = offset["epochs"] + state.local
        remaining = total_epochs - done_epochs
        if remaining <= 0:
            raise UserError(f"{state.path}: {done_epochs} of {total_epochs} epochs are done; nothing to resume")
        if not total_steps:
            total_steps = total_steps_from_log(state.run_dir / "log")
        if not total_steps or total_steps % total_epochs:
            raise UserError(f"cannot tell the length of the original schedule from {state.run_dir / 'log'} (sd-scripts prints "
                            f"'total optimization steps' before its first step); resume needs it to continue the learning rate")
        done_steps = done_epochs * (total_steps // total_epochs)
        extra = ["--max_train_epochs", str(remaining)]
        info_counts = {"done_epochs": done_epochs, "total_epochs": total_epochs, "remaining_epochs": remaining}
        schedule = {"total_steps": total_steps, "total_epochs": total_epochs}
    else:
        total_steps = int(args.max_train_steps)
        done_steps = offset["steps"] + state.local
        remaining = total_steps - done_steps
        if remaining <= 0:
            raise UserError(f"{state.path}: {done_steps} of {total_steps} steps are done; nothing to resume")
        extra = ["--max_train_steps", str(remaining)]
        info_counts = {"done_steps": done_steps, "total_steps": total_steps, "remaining_steps": remaining}
        schedule = {"total_steps": total_steps, "total_epochs": None}
        done_epochs = 0

    files: dict[str, str] = {}
    pythonpath = None
    schedule_argv = continued_schedule_argv(args, total_steps, state.path)
    if schedule_argv:
        from swimlatent_wrap.stages import continued_schedule

        files[f"resume/{MODULE_NAME}.py"] = Path(continued_schedule.__file__).read_text(encoding="utf-8")
        pythonpath = "resume"
        extra += schedule_argv
    else:
        notes.append("the learning rate does not depend on the step count here (schedule-free / adafactor): no schedule to continue")
    notes.insert(0, f"resuming sdxl_train from {state.path}: {done_steps} of {total_steps} steps done; training the "
                    f"remaining {remaining} {unit}s (sdxl_train.py would otherwise run the whole schedule again)")
    info = {"state": str(state.path), "from_run": str(state.run_dir), "unit": unit, "done_steps": done_steps, **info_counts,
            "how": "sdxl_train.py restarts its step count on --resume: the remaining schedule is passed explicitly, "
                   "with the original learning-rate curve (resume/swimlatent_continued_schedule.py)"}
    return ResumePlan(state=state.path, extra_argv=extra, files=files, pythonpath=pythonpath, info=info,
                      position={"epochs": done_epochs, "steps": done_steps}, schedule=schedule, notes=notes)


def continued_schedule_argv(args: EffectiveArgs, total_steps: int, state: Path | None = None) -> list[str]:
    """The options that make a resumed sdxl_train.py use the original learning-rate curve
    (continued_schedule.py), and restore every fused optimizer group from ``state``; [] when the
    rate does not depend on the step count."""
    optimizer = (args.optimizer_type or "").lower()
    groups = getattr(args, "fused_optimizer_groups", None)
    if args.lr_scheduler_type:
        raise UserError(f"[args] lr_scheduler_type = {args.lr_scheduler_type!r}: a custom scheduler is built by sd-scripts for "
                        f"the remaining steps only and cannot be continued; start over without --resume")
    if optimizer.endswith("schedulefree") or str(args.lr_scheduler).startswith("adafactor"):
        if groups:
            raise UserError("fused_optimizer_groups with a schedule-free optimizer or the adafactor schedule cannot be resumed: "
                            "sd-scripts restores only the first group's optimizer state (continued_schedule.py says why); "
                            "start over without --resume")
        return []
    scheduler_args = {
        "scheduler": args.lr_scheduler,
        "total_steps": total_steps,
        "warmup_steps": args.lr_warmup_steps,
        "decay_steps": args.lr_decay_steps,
        "num_cycles": args.lr_scheduler_num_cycles,
        "power": args.lr_scheduler_power,
        "timescale": args.lr_scheduler_timescale,
        "min_lr_ratio": args.lr_scheduler_min_lr_ratio,
        "optimizer_type": args.optimizer_type or "",
    }
    kwargs = _scheduler_kwargs(args.lr_scheduler_args)
    if kwargs:
        scheduler_args["scheduler_kwargs"] = kwargs
    if groups and state is not None:
        scheduler_args["restore_groups_from"] = str(state)
    items = [f"{key}={value!r}" for key, value in scheduler_args.items()]
    bad = [item for item in items if item.count("=") != 1]
    if bad:
        raise UserError(f"cannot pass the learning-rate schedule through --lr_scheduler_args (sd-scripts splits each item "
                        f"at its one '='): {bad[0]}")
    # sd-scripts refuses a non-zero warmup with --lr_scheduler_type; the warmup is inside the schedule we hand it.
    return ["--lr_scheduler_type", f"{MODULE_NAME}.continued_schedule", "--lr_warmup_steps", "0",
            "--lr_decay_steps", "0", "--lr_scheduler_args", *items]

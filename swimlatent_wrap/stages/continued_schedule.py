"""Runs inside sd-scripts' training process, never in the wrapper: the learning-rate schedule of the
*original* run, for a resumed ``sdxl_train.py`` that trains only the remaining steps.

Why (facts §0.14): ``sdxl_train.py --resume`` restores the optimizer and the scheduler's position
(``last_epoch`` = steps already done) but restarts its own step count, and builds its scheduler for
whatever ``max_train_steps`` it is given. Resuming with the full schedule trains it twice; resuming
with only the remaining steps builds the curve for the shorter total and evaluates it at the
restored position — a cosine reaches zero early and the rest of the run learns nothing.

So the wrapper resumes with the remaining steps AND, through sd-scripts' own extension point
``--lr_scheduler_type module.callable`` (``get_scheduler_fix`` calls it with the optimizer and the
``--lr_scheduler_args`` key=value pairs), asks for this function, which builds the original
schedule — same name, same total, same warmup/decay/cycles — with sd-scripts' own
``get_scheduler_fix``. The restored position then lands on the same curve, so the remaining steps
see exactly the learning rates they would have seen without the interruption.

With ``fused_optimizer_groups``, sdxl_train.py builds one optimizer and one scheduler per group,
but registers all but the first with accelerate only *after* it has loaded the state
(``resume_from_local_or_hf_if_specified`` comes before the ``accelerator.prepare(optimizers[i])``
loop), so accelerate restores group 0 alone: the other groups would resume with an empty optimizer
state and their schedule back at step 0 (seen in the real tier: after a resumed step of a 10-group
run, the first group's weights had moved by the continued rate, the rest by the first step's).
sd-scripts builds the schedulers in group order through this function, so for group i > 0 it
loads ``optimizer_<i>.bin`` and ``scheduler_<i>.bin`` from the state folder (``restore_groups_from``)
itself, as accelerate's load_state would have.

The wrapper copies this file into the run folder (``resume/swimlatent_continued_schedule.py``) and
puts that folder on the child's PYTHONPATH. Imports happen inside the function: the file can be
imported anywhere without torch.
"""

from __future__ import annotations

from typing import Any

_built = 0  # schedulers built so far in this process: sd-scripts builds them in group order


def continued_schedule(optimizer: Any, *, scheduler: str, total_steps: int, warmup_steps: float = 0,
                       decay_steps: float = 0, num_cycles: int = 1, power: float = 1.0, timescale: int | None = None,
                       min_lr_ratio: float | None = None, optimizer_type: str = "",
                       scheduler_kwargs: dict[str, Any] | None = None, restore_groups_from: str | None = None) -> Any:
    """The scheduler for ``optimizer`` (torch objects, so Any: this file imports torch only inside)."""
    import argparse

    from accelerate.state import PartialState
    from library import train_util

    original = argparse.Namespace(
        lr_scheduler=scheduler,
        max_train_steps=total_steps,
        lr_warmup_steps=warmup_steps,
        lr_decay_steps=decay_steps,
        lr_scheduler_num_cycles=num_cycles,
        lr_scheduler_power=power,
        lr_scheduler_timescale=timescale,
        lr_scheduler_min_lr_ratio=min_lr_ratio,
        lr_scheduler_type=None,
        lr_scheduler_args=[f"{key}={value!r}" for key, value in (scheduler_kwargs or {}).items()],
        optimizer_type=optimizer_type,
        gradient_accumulation_steps=1,
    )
    global _built
    group, _built = _built, _built + 1
    built = train_util.get_scheduler_fix(original, optimizer, PartialState().num_processes)
    if restore_groups_from and group > 0:
        import os

        import torch

        for name, target in ((f"optimizer_{group}.bin", optimizer), (f"scheduler_{group}.bin", built)):
            path = os.path.join(restore_groups_from, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"resume: {path} is missing: the state has fewer optimizer groups than this run")
            target.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
    return built

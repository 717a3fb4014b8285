"""`swimlatent sweep RECIPE [--dry-run] [--allow-cpu]`: the LoRA drawn at each ratio → grid.png
(swimlatent_wrap.stages.sweep)."""

from __future__ import annotations


def run(args) -> int:
    from swimlatent_wrap.recipe import load_recipe
    from swimlatent_wrap.stages.sweep import run_sweep
    from swimlatent_wrap.workdir import Workdir

    run_sweep(load_recipe(args.recipe), Workdir(args.workdir), args.sd_scripts, dry_run=args.dry_run,
              allow_cpu=args.allow_cpu)
    return 0

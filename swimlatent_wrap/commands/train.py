"""`swimlatent train RECIPE [--dry-run] [--resume] [--allow-cpu]`: plan, preflight, run the stage's
sd-scripts script, verify and place its output (swimlatent_wrap.stages.train)."""

from __future__ import annotations


def run(args) -> int:
    from swimlatent_wrap.recipe import load_recipe
    from swimlatent_wrap.stages.train import train_stage
    from swimlatent_wrap.workdir import Workdir

    recipe = load_recipe(args.recipe)
    train_stage(recipe, workdir=Workdir(args.workdir), sd_scripts=args.sd_scripts, resume=args.resume,
                dry_run=args.dry_run, allow_cpu=args.allow_cpu)
    return 0

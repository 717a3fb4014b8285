"""`swimlatent run RECIPE [--allow-cpu]`: every step of the recipe's stage (collect/select, tag,
train), skipping steps whose inputs have not changed (swimlatent_wrap.stages.steps)."""

from __future__ import annotations


def run(args) -> int:
    from swimlatent_wrap.recipe import load_recipe
    from swimlatent_wrap.stages.steps import run_stage
    from swimlatent_wrap.workdir import Workdir

    recipe = load_recipe(args.recipe)
    run_stage(recipe, workdir=Workdir(args.workdir), sd_scripts=args.sd_scripts, allow_cpu=args.allow_cpu)
    return 0

"""`swimlatent plan RECIPE --out DIR`: write the stage's exact launch into DIR and print it."""

from __future__ import annotations

from pathlib import Path

from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.stages.plan import make_plan, write_plan
from swimlatent_wrap.workdir import Workdir


def run(args) -> int:
    recipe = load_recipe(args.recipe)
    plan = make_plan(recipe, run_dir=Path(args.out).resolve(), workdir=Workdir(args.workdir), sd_scripts=args.sd_scripts)
    write_plan(plan)
    print(plan.command_line)
    return 0

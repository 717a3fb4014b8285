"""`swimlatent validate RECIPE...`: every problem of every recipe, one line each."""

from __future__ import annotations

import sys

from swimlatent_wrap.recipe import check_recipe


def run(args) -> int:
    failed = False
    for path in args.recipes:
        recipe, problems = check_recipe(path)
        for problem in problems:
            print(problem, file=sys.stderr)
        if recipe is None:
            failed = True
            continue
        warnings = sum(1 for p in problems if p.warning)
        print(f"{path}: ok" + (f" ({warnings} warning{'s' if warnings > 1 else ''})" if warnings else ""))
    return 1 if failed else 0

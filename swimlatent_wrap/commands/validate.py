"""`swimlatent validate RECIPE...`: every problem of every recipe, one line each."""

from __future__ import annotations

import sys

from swimlatent_wrap.recipe import check_recipe


def run(args) -> int:
    failed = False
    for path in args.recipes:
        _, problems = check_recipe(path)
        for problem in problems:
            print(problem, file=sys.stderr)
        failed = failed or bool(problems)
        if not problems:
            print(f"{path}: ok")
    return 1 if failed else 0

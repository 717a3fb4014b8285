"""`swimlatent collect RECIPE [--limit N]`: download the recipe's Danbooru dataset (swimlatent_wrap.stages.collect)."""

from __future__ import annotations


def run(args) -> int:
    from swimlatent_wrap.recipe import load_recipe
    from swimlatent_wrap.stages.collect import collect_dataset
    from swimlatent_wrap.workdir import Workdir

    collect_dataset(load_recipe(args.recipe), Workdir(args.workdir), limit=args.limit)
    return 0

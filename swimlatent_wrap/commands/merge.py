"""`swimlatent merge RECIPE [--dry-run]`: sdxl_merge_lora.py at the recipe's [merge] ratio, the merge
verified tensor by tensor, then models/merged.safetensors placed atomically."""

from __future__ import annotations


def run(args) -> int:
    from swimlatent_wrap.recipe import load_recipe
    from swimlatent_wrap.release.merge import run_merge
    from swimlatent_wrap.workdir import Workdir

    recipe = load_recipe(args.recipe)
    run_merge(recipe, Workdir(args.workdir), args.sd_scripts, dry_run=args.dry_run)
    return 0

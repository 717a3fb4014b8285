"""`swimlatent sweep RECIPE [--dry-run] [--allow-cpu]`: the LoRA drawn at each ratio → grid.png."""

from __future__ import annotations

import shlex
import sys
import time

from swimlatent_wrap import atomic
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.workdir import Workdir


def run(args) -> int:
    from swimlatent_wrap import runner
    from swimlatent_wrap.release import sweep
    from swimlatent_wrap.stages.preflight import Preflight, check_cuda

    recipe = load_recipe(args.recipe)
    if recipe.script != "sdxl_train_network" or recipe.model.kind != "stage":
        raise UserError(f"{recipe.path}: a sweep needs a LoRA recipe (script = \"sdxl_train_network\") that starts from stage:<name>")
    workdir = Workdir(args.workdir)
    model, lora = workdir.model_path(recipe.model.stage), workdir.model_path(recipe.name)
    folder = workdir.sweep_dir(recipe.name) / time.strftime("%Y%m%d-%H%M%S")
    grid = sweep.cells(recipe)
    python = recipe.launch.python or sys.executable
    argv = sweep.gen_argv(recipe, python=python, sd_scripts=args.sd_scripts, model=model, lora=lora,
                          prompts=folder / "prompts.txt", outdir=folder, tokenizer_cache=workdir.tokenizer_cache())
    prompts = sweep.prompt_file_text(recipe, grid)
    if args.dry_run:
        print(f"# {len(grid)} images: {len(grid) // len(recipe.sweep.ratios)} prompt×seed rows × ratios "
              f"{', '.join(f'{r:g}' for r in recipe.sweep.ratios)}; prompts.txt would hold:")
        sys.stdout.write("".join(f"#   {line}\n" for line in prompts.splitlines()))
        print(shlex.join(argv))
        return 0
    missing = [str(p) for p in (model, lora) if not p.is_file()]
    if missing:
        raise UserError(f"not found: {', '.join(missing)}; train the stages first (make ft, swimlatent train {args.recipe})")
    if not args.allow_cpu:
        checks = Preflight()
        check_cuda(python, checks)
        checks.fail_if_any()
    atomic.write_text(folder / "prompts.txt", prompts)
    env = None
    if args.allow_cpu:
        import os

        from swimlatent_wrap.sdscripts.cpu import environment

        env = environment(dict(os.environ))
    runner.run(argv, log_path=folder / "log", env=env)
    sweep.collect_images(folder, grid)
    sweep.grid_image(folder, recipe, grid, folder / "grid.png")
    atomic.write_text(folder / "index.html", sweep.html_page(recipe, grid))
    atomic.write_text(folder / "sweep.json", sweep.sweep_record(recipe, grid, argv, model, lora))
    print(f"sweep: {folder / 'grid.png'} ({len(grid)} images); open {folder / 'index.html'}, "
          f"then set [merge] ratio in {args.recipe}")
    return 0

"""The LoRA ratio sweep: sdxl_gen_img.py draws the sweep's prompts at each ratio (release.sweep),
then a labelled grid.png, an index.html and sweep.json in sweeps/<stage>/<timestamp>/."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from swimlatent_wrap import atomic
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.workdir import Workdir, new_run_folder


def lora_from_stage(recipe: Recipe) -> bool:
    """A LoRA trained on another stage's model: the recipes that are swept, merged and released."""
    return recipe.script == "sdxl_train_network" and recipe.model.kind == "stage"


def run_sweep(recipe: Recipe, workdir: Workdir, sd_scripts: Path, *, dry_run: bool = False,
              allow_cpu: bool = False) -> Path | None:
    """Draw the grid; returns the sweep's folder (None for ``dry_run``, which prints the command and
    the prompts instead). ``allow_cpu``: no CUDA preflight, and the CPU environment (sdscripts.cpu)."""
    from swimlatent_wrap import runner
    from swimlatent_wrap.release import sweep
    from swimlatent_wrap.stages.preflight import Preflight, check_cuda

    if not lora_from_stage(recipe) or recipe.model.kind != "stage":
        raise UserError(f"{recipe.path}: a sweep needs a LoRA recipe (script = \"sdxl_train_network\") that starts from stage:<name>")
    model, lora = workdir.model_path(recipe.model.stage), workdir.model_path(recipe.name)
    folder = new_run_folder(workdir.sweep_dir(recipe.name), create=False)
    grid = sweep.cells(recipe)
    python = recipe.launch.python or sys.executable
    argv = sweep.gen_argv(recipe, python=python, sd_scripts=sd_scripts, model=model, lora=lora,
                          prompts=folder / "prompts.txt", outdir=folder, tokenizer_cache=workdir.tokenizer_cache())
    prompts = sweep.prompt_file_text(recipe, grid)
    if dry_run:
        print(f"# {len(grid)} images: {len(grid) // len(recipe.sweep.ratios)} prompt×seed rows × ratios "
              f"{', '.join(f'{r:g}' for r in recipe.sweep.ratios)}; prompts.txt would hold:")
        sys.stdout.write("".join(f"#   {line}\n" for line in prompts.splitlines()))
        print(shlex.join(argv))
        return None
    missing = [str(p) for p in (model, lora) if not p.is_file()]
    if missing:
        raise UserError(f"not found: {', '.join(missing)}; train the stages first (make ft, swimlatent train {recipe.path})")
    env = None
    if allow_cpu:
        from swimlatent_wrap.sdscripts.cpu import environment

        env = environment(dict(os.environ))
    else:
        checks = Preflight()
        check_cuda(python, checks)
        checks.fail_if_any()
    atomic.write_text(folder / "prompts.txt", prompts)
    runner.run(argv, log_path=folder / "log", env=env)
    sweep.collect_images(folder, grid)
    sweep.grid_image(folder, recipe, grid, folder / "grid.png")
    atomic.write_text(folder / "index.html", sweep.html_page(recipe, grid))
    atomic.write_text(folder / "sweep.json", sweep.sweep_record(recipe, grid, argv, model, lora))
    print(f"sweep: {folder / 'grid.png'} ({len(grid)} images); open {folder / 'index.html'}, "
          f"then set [merge] ratio in {recipe.path}")
    return folder

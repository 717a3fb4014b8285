"""`swimlatent smoke RECIPE`: the real check of a recipe before paying for GPU hours.

Every stage the recipe needs (its `model = "stage:<x>"` chain, first stage first) is trained for
one optimizer step by the real sd-scripts, on a few of the stage's own captioned images at a small
size, in a throwaway workdir; a LoRA recipe then goes through its real sweep (two ratios, one
prompt, a few sampling steps), merge and stamp. Each stage is the user's recipe through
`extends`, with only these overrides:

- the dataset: a folder holding copies of the first images of the stage's dataset (as many as one
  optimizer step takes: batch_size × gradient_accumulation_steps), or of `--images DIR`;
- size and length: [dataset_config] resolution = --size with buckets around it, one epoch, no
  saved states, no sample images;
- on a machine without CUDA: sd-scripts' CPU options (swimlatent_wrap.sdscripts.cpu), the merge
  computed in fp16 (host RAM).

Everything else — optimizer, scheduler, precision, network, captions, sd-scripts' own checks at
start — is the recipe's, so a fault that only sd-scripts notices shows up here in minutes. The
tokenizer cache and downloaded Hub models of the real workdir are used read-only; nothing is
written there except a Hub model that `train` would also have fetched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.images import has_caption, images_in
from swimlatent_wrap.recipe import Recipe, load_recipe
from swimlatent_wrap.sdscripts.cpu import CPU_ARGS
from swimlatent_wrap.stages.plan import image_dir
from swimlatent_wrap.workdir import Workdir

SWEEP_STEPS = 4


@dataclass
class Outcome:
    stage: str
    status: str  # "ok" | "failed" | "not run"
    detail: str
    seconds: float = 0.0

    def line(self) -> str:
        took = f" ({self.seconds:.0f} s)" if self.seconds else ""
        return f"smoke: {self.stage}: {self.status}{took}" + (f": {self.detail}" if self.detail else "")


def stage_recipe_file(stage: str, beside: list[Path]) -> Path:
    """The recipe file that trains ``stage``: `<stage>.toml` beside the referring recipe, else the
    only recipe there with that name."""
    for folder in beside:
        exact = folder / f"{stage}.toml"
        if exact.is_file() and _name_of(exact) == stage:
            return exact
    found = sorted({p.resolve() for folder in beside for p in folder.glob("*.toml") if _name_of(p) == stage})
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"smoke: no recipe named {stage!r} beside {beside[0]}")
    raise UserError(f"smoke: several recipes train stage {stage!r} ({', '.join(p.name for p in found)}) and none is "
                    f"{stage}.toml; smoke the one you mean directly")


def _name_of(path: Path) -> str | None:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def chain(recipe: Recipe) -> list[Recipe]:
    """The recipes of every stage ``recipe`` needs, in training order, ending with ``recipe``."""
    out = [recipe]
    while True:
        referrer = out[0]
        base = referrer.model
        if base.kind != "stage":
            break
        folders = [referrer.path.parent] + [p.parent for p in referrer.chain]
        parent = load_recipe(stage_recipe_file(base.stage, folders))
        if any(r.name == parent.name for r in out):
            raise UserError(f"smoke: the stages refer to each other in a circle ({parent.name})")
        out.insert(0, parent)
    return out


def images_per_step(recipe: Recipe) -> int:
    batch = int(recipe.dataset_config.get("batch_size", 1))
    accumulation = int(recipe.args.get("gradient_accumulation_steps", 1))
    return max(1, batch * accumulation)


def pick_images(recipe: Recipe, source: Path, count: int) -> list[Path]:
    extension = recipe.dataset_config.get("caption_extension", ".txt")
    captioned = [p for p in images_in(source) if has_caption(p, extension)]
    if not captioned:
        raise UserError(f"no captioned images in {source} yet: run `swimlatent run {recipe.path}` up to tagging "
                        f"(collect, tag), or give --images DIR")
    return captioned[:count]


def _toml(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else repr(value)


def derived_recipe(recipe: Recipe, *, model: str | None, data: Path, size: int, cpu: bool,
                   prompt_file: Path | None) -> str:
    """The smoke version of ``recipe``: `extends` it, overriding only what is listed above."""
    steps = int(recipe.dataset_config.get("bucket_reso_steps", 64))
    low = max(steps, (size // 2) // steps * steps)
    lines = [f"extends = {_toml(str(recipe.path))}", f"name = {_toml(recipe.name)}"]
    if model is not None:
        lines.append(f"model = {_toml(model)}")
    lines += ["[dataset]", f'name = {_toml("smoke-" + recipe.name)}', 'source = "folder"', f"path = {_toml(str(data))}",
              "[dataset_config]", f"resolution = {size}", f"min_bucket_reso = {low}", f"max_bucket_reso = {size * 2}",
              "[args]", "max_train_epochs = 1", "save_state = false"]
    if cpu:
        lines += [f"{key} = {_toml(value)}" for key, value in CPU_ARGS.items()]
        lines += ["[launch]", f"num_cpu_threads_per_process = {os.cpu_count() or 1}"]
    lines += ["[sample]", "every_n_epochs = 0", "every_n_steps = 0"]
    if prompt_file is not None:
        ratio = float(recipe.merge.ratio) if recipe.merge.ratio else 1.0
        lines += ["[sweep]", f"ratios = [0.0, {ratio!r}]", f"seeds = [{int((recipe.sweep.seeds or [1])[0])}]",
                  f"prompts = {_toml(str(prompt_file))}", f"width = {size}", f"height = {size}", f"steps = {SWEEP_STEPS}"]
        if cpu:
            lines += ["[merge]", 'precision = "fp16"']
    return "\n".join(lines) + "\n"


def first_prompt(recipe: Recipe) -> str:
    from swimlatent_wrap.release.sweep import read_prompts, sweep_prompts_file

    prompts = read_prompts(sweep_prompts_file(recipe))
    if not prompts:
        raise UserError(f"{recipe.path}: no prompt for the sweep ([sweep] prompts or [sample] prompts)")
    return prompts[0]


def cuda_available(python: str) -> bool:
    from swimlatent_wrap.stages.preflight import Preflight, check_cuda

    checks = Preflight()
    check_cuda(python, checks)
    return not checks.problems


def smoke(recipe_path: Path, *, workdir: Workdir, sd_scripts: Path, size: int = 256, images: Path | None = None,
          keep: bool = False, force_cpu: bool = False) -> list[Outcome]:
    """Smoke every stage ``recipe_path`` needs; one outcome per stage (stops at the first failure)."""
    from swimlatent_wrap.stages.steps import run_stage

    recipes = chain(load_recipe(recipe_path))
    python = recipes[-1].launch.python or sys.executable
    cpu = force_cpu or not cuda_available(python)
    root = Path(tempfile.mkdtemp(prefix="smoke-", dir=_scratch(workdir)))
    smoke_workdir = Workdir(root / "work")
    tokenizers = workdir.tokenizer_cache()
    if tokenizers.is_dir():
        smoke_workdir.tokenizer_cache().parent.mkdir(parents=True, exist_ok=True)
        smoke_workdir.tokenizer_cache().symlink_to(tokenizers.resolve(), target_is_directory=True)
    say(f"throwaway workdir {root}; {'CPU (no CUDA GPU visible)' if cpu else 'CUDA'}; {size} px, 1 step per stage")
    outcomes: list[Outcome] = []
    try:
        for recipe in recipes:
            if outcomes and outcomes[-1].status != "ok":
                outcomes.append(Outcome(recipe.name, "not run", f"needs {outcomes[-1].stage}"))
                continue
            started = time.monotonic()
            try:
                derived = _prepare_stage(recipe, root, workdir, images=images, size=size, cpu=cpu)
                say(f"{recipe.name}: one step of {derived}")
                run_stage(load_recipe(derived), workdir=smoke_workdir, sd_scripts=sd_scripts, allow_cpu=cpu)
            except UserError as error:
                outcomes.append(Outcome(recipe.name, "failed", error.lines[0], time.monotonic() - started))
            else:
                outcomes.append(Outcome(recipe.name, "ok", "", time.monotonic() - started))
    finally:
        if keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return outcomes


def _prepare_stage(recipe: Recipe, root: Path, workdir: Workdir, *, images: Path | None, size: int, cpu: bool) -> Path:
    data = root / "data" / recipe.name
    data.mkdir(parents=True)
    source = images or image_dir(recipe, workdir)
    extension = recipe.dataset_config.get("caption_extension", ".txt")
    for image in pick_images(recipe, source, images_per_step(recipe)):
        shutil.copy2(image, data / image.name)
        shutil.copy2(image.with_name(image.stem + extension), data / (image.stem + extension))
    model: str | None = None
    if recipe.model.kind == "hf":
        from swimlatent_wrap.stages.hub import ensure_hub_file

        path, _ = ensure_hub_file(workdir, recipe.model.repo_id, recipe.model.filename)
        model = str(path)
    prompt_file = None
    if recipe.script == "sdxl_train_network" and recipe.model.kind == "stage":
        prompt_file = root / "recipes" / f"{recipe.name}-prompt.txt"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(first_prompt(recipe) + "\n", encoding="utf-8")
    target = root / "recipes" / f"{recipe.name}.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(derived_recipe(recipe, model=model, data=data, size=size, cpu=cpu, prompt_file=prompt_file),
                      encoding="utf-8")
    return target


def _scratch(workdir: Workdir) -> Path:
    folder = workdir.root / "smoke"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def say(text: str) -> None:
    print(f"swimlatent smoke: {text}", file=sys.stderr, flush=True)

"""Recipe → the exact sd-scripts launch of one stage, as files in a run folder.

    argv.json     the full launch argv (a JSON list)
    args.toml     sd-scripts --config_file: the recipe's [args] + the paths the wrapper owns
    dataset.toml  sd-scripts --dataset_config: [dataset_config] + the dataset's images folder
    command.sh    the argv as one shell-quoted line
    prompts.txt   sample prompts with explicit size, steps, scale and seed (when [sample] has prompts)

Pure: no network, GPU or sd-scripts needed; the same recipe, workdir and run folder give
byte-identical files. No environment variable is read, so no secret can reach a plan.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swimlatent_wrap import atomic
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.sdscripts import toml_writer
from swimlatent_wrap.sdscripts.launch import accelerate_argv, training_argv
from swimlatent_wrap.sdscripts.manifest import load_manifest
from swimlatent_wrap.workdir import Workdir

PLAN_FILES = ("argv.json", "args.toml", "dataset.toml", "command.sh")


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    run_dir: Path
    argv: list[str]
    script_argv: list[str]  # the part of argv from the script on (without the launcher)
    files: dict[str, str] = field(repr=False)
    output_dir: Path = Path()
    output_name: str = ""
    model_path: Path = Path()
    image_dir: Path = Path()

    @property
    def output_file(self) -> Path:
        return self.output_dir / f"{self.output_name}.safetensors"

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)


def model_path(recipe: Recipe, workdir: Workdir) -> Path:
    ref = recipe.model
    if ref.kind == "path":
        return ref.path
    if ref.kind == "hf":
        return workdir.hub_file(ref.repo_id, ref.filename)
    return workdir.model_path(ref.stage)


def image_dir(recipe: Recipe, workdir: Workdir) -> Path:
    if recipe.dataset.source == "folder":
        if recipe.dataset.path is None:  # `validate` refuses this; said again for a caller that did not validate
            raise UserError(f"{recipe.path}: [dataset] source = \"folder\" needs `path`")
        return recipe.dataset.path
    # danbooru: collected there; selection: `curate` links the selected images there.
    return workdir.images_dir(recipe.dataset.name)


def dataset_document(recipe: Recipe, images: Path) -> dict[str, Any]:
    finetuning = recipe.dataset.metadata_file is not None
    general = dict(recipe.dataset_config)
    prefix = recipe.captions.prefix
    if prefix and "keep_tokens" not in general:
        general["keep_tokens"] = len(prefix)  # the prefix stays at the head when captions are shuffled
    if not finetuning:
        general.setdefault("caption_extension", ".txt")  # facts §0.7: sd-scripts' default is .caption
    general = dict(sorted(general.items()))
    subset: dict[str, Any] = {"image_dir": str(images)}
    if finetuning:
        subset["metadata_file"] = str(recipe.dataset.metadata_file)
    if general.pop("alpha_mask", False):
        subset["alpha_mask"] = True
    subset["num_repeats"] = recipe.dataset.num_repeats
    return {"general": general, "datasets": [{"subsets": [subset]}]}


def prompts_text(recipe: Recipe) -> str | None:
    sample = recipe.sample
    if sample.prompts is None:
        return None
    lines = []
    prompts = [line.strip() for line in sample.prompts.read_text(encoding="utf-8").splitlines()]
    for index, prompt in enumerate(p for p in prompts if p and not p.startswith("#")):
        # facts §0.13: without --w/--h sd-scripts samples at 512×512.
        line = f"{prompt} --w {sample.width} --h {sample.height} --s {sample.steps} --l {sample.scale:g} --d {sample.seed + index}"
        if sample.negative_prompt:
            line += f" --n {sample.negative_prompt}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def args_document(recipe: Recipe, *, run_dir: Path, workdir: Workdir, model: Path, resume: Path | None,
                  has_prompts: bool) -> dict[str, Any]:
    options = load_manifest().script(recipe.script).options
    args: dict[str, Any] = {}
    for key, value in sorted(recipe.args.items()):
        if options[key].kind == "flag" and value is False:
            continue  # a flag is on or absent; false is its default
        args[key] = value
    resolution = recipe.dataset_config.get("resolution")
    owned: dict[str, Any] = {
        "pretrained_model_name_or_path": str(model),
        "dataset_config": str(run_dir / "dataset.toml"),
        "output_dir": str(run_dir / "output"),
        "output_name": recipe.name,
        "save_model_as": "safetensors",  # facts §0.8: else a .safetensors source may be saved as .ckpt
        "logging_dir": str(run_dir / "logs"),
        "tokenizer_cache_dir": str(workdir.tokenizer_cache()),
    }
    if resolution is not None:
        # facts §0.12: modelspec.resolution comes from the command-line resolution only.
        width, height = (resolution, resolution) if isinstance(resolution, int) else resolution
        owned["resolution"] = f"{width},{height}"
    if has_prompts:
        sample = recipe.sample
        owned["sample_prompts"] = str(run_dir / "prompts.txt")
        owned["sample_sampler"] = sample.sampler
        if sample.every_n_epochs:
            owned["sample_every_n_epochs"] = sample.every_n_epochs
        if sample.every_n_steps:
            owned["sample_every_n_steps"] = sample.every_n_steps
        if sample.at_first:
            owned["sample_at_first"] = True
    if resume is not None:
        owned["resume"] = str(resume)
    args.update(owned)
    return dict(sorted(args.items()))


def make_plan(recipe: Recipe, *, run_dir: Path, workdir: Workdir, sd_scripts: Path, resume: Path | None = None) -> Plan:
    """Everything a run of ``recipe`` in ``run_dir`` needs; writes nothing."""
    run_dir = run_dir.resolve()
    model = model_path(recipe, workdir)
    images = image_dir(recipe, workdir)
    prompts = prompts_text(recipe)
    args = args_document(recipe, run_dir=run_dir, workdir=workdir, model=model, resume=resume, has_prompts=prompts is not None)
    precision = args["mixed_precision"]
    python = recipe.launch.python or sys.executable
    tail = training_argv(load_manifest(), recipe.script, sd_scripts.resolve(), run_dir / "args.toml", precision)
    argv = accelerate_argv(python, recipe.launch, precision) + tail
    files = {
        "argv.json": json.dumps(argv, indent=1, ensure_ascii=False) + "\n",
        "args.toml": toml_writer.dumps(args),
        "dataset.toml": toml_writer.dumps(dataset_document(recipe, images)),
        "command.sh": shlex.join(argv) + "\n",
    }
    if prompts is not None:
        files["prompts.txt"] = prompts
    return Plan(recipe=recipe, run_dir=run_dir, argv=argv, script_argv=tail, files=files,
                output_dir=run_dir / "output", output_name=recipe.name, model_path=model, image_dir=images)


def write_plan(plan: Plan) -> None:
    for name, text in plan.files.items():
        atomic.write_text(plan.run_dir / name, text)

"""`swimlatent tag RECIPE` | `swimlatent tag --images DIR [--model M]`: WD14 captions beside each image.

Values come from the recipe's [captions] table (or that table's declared defaults with
--images), and the flags override them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe.tables import captions as captions_table
from swimlatent_wrap.tagger.caption import CaptionRule
from swimlatent_wrap.tagger.pipeline import TagJob, TagReport, tag_folder
from swimlatent_wrap.tagger.terminal import Terminal
from swimlatent_wrap.workdir import Workdir


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)
    terminal = Terminal()
    report = tag_folder(job, terminal)
    print_report(report, terminal)
    return 0


def job_from_args(args: argparse.Namespace) -> TagJob:
    if args.recipe and args.images:
        raise UserError("give a RECIPE or --images DIR, not both")
    if args.recipe:
        return _recipe_job(args)
    if args.images:
        return _folder_job(args)
    raise UserError("give a RECIPE, or --images DIR [--model M] to caption any folder")


def _recipe_job(args: argparse.Namespace) -> TagJob:
    from swimlatent_wrap.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    workdir = Workdir(args.workdir)
    dataset = recipe.dataset
    only = None
    if dataset.source == "folder":
        images, manifest = Path(dataset.path), workdir.dataset_manifest(dataset.name)
    elif dataset.source == "selection":
        # Caption the selected images where they live; the stage links them, captions included,
        # into its own dataset folder (swimlatent_wrap.stages.selection).
        from swimlatent_wrap.stages.selection import read_selection

        only = tuple(read_selection(Path(dataset.selection)))
        images, manifest = workdir.images_dir(dataset.from_dataset), workdir.dataset_manifest(dataset.from_dataset)
    else:
        images, manifest = workdir.images_dir(dataset.name), workdir.dataset_manifest(dataset.name)
    if not images.is_dir():
        hint = "" if dataset.source == "folder" else f"; collect it first: swimlatent collect {args.recipe}"
        raise UserError(f"{images}: the dataset's images folder does not exist{hint}")
    return _job(args, recipe.captions.as_dict(), images, manifest, only, model_base=recipe.path.parent)


def _folder_job(args: argparse.Namespace) -> TagJob:
    images = Path(args.images).expanduser().resolve()
    # A workdir dataset (datasets/<name>/images) keeps its manifest one level up.
    manifest = images.parent / "manifest.sqlite" if images.name == "images" else None
    defaults = {f.name: f.default for f in captions_table.TABLE.fields}
    return _job(args, defaults, images, manifest, None, model_base=None)


def _job(args, values: dict, images: Path, manifest: Path | None, only, model_base: Path | None) -> TagJob:
    if args.model is not None:
        values["model"] = args.model
    if args.prefix is not None:
        values["prefix"] = [tag.strip() for tag in args.prefix.split(",") if tag.strip()]
    for name in ("general_threshold", "character_threshold"):
        flag = getattr(args, name)
        if flag is not None:
            if not 0.0 <= flag <= 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be between 0 and 1, got {flag}")
            values[name] = flag
    if args.batch_size is not None:
        values["batch_size"] = args.batch_size
    if args.blacklist is not None:
        values["blacklist"] = [tag.strip() for tag in args.blacklist.split(",") if tag.strip()]
    if args.rating_tag:
        values["rating_tag"] = True
    rule = CaptionRule(
        prefix=tuple(values["prefix"]),
        general_threshold=float(values["general_threshold"]),
        character_threshold=float(values["character_threshold"]),
        blacklist=tuple(values["blacklist"]),
        rating_tag=bool(values["rating_tag"]),
    )
    return TagJob(images=images, model=values["model"], rule=rule, batch_size=int(values["batch_size"]),
                  force=bool(args.force), manifest=manifest, only=only, model_base=model_base)


def print_report(report: TagReport, terminal: Terminal) -> None:
    if report.unreadable:
        terminal.warn(f"{len(report.unreadable)} image(s) could not be read and were skipped (no caption written):",
                      *(f"  {path.name}: {reason}" for path, reason in report.unreadable))
    parts = [f"captioned {len(report.captioned)} image(s) in {report.seconds:.1f} s"]
    if report.captioned:
        parts[0] += f" ({report.images_per_second:.2f} images/s)"
    parts.append(f"{report.already} already captioned, skipped")
    if report.unreadable:
        parts.append(f"{len(report.unreadable)} unreadable, skipped")
    if report.clashes:
        parts.append(f"{len(report.clashes)} sharing another image's caption file, skipped")
    print(f"{report.folder}: " + "; ".join(parts), flush=True)

"""Caption a recipe's dataset, or any folder of images, with the WD14 tagger (tagger.pipeline).

Values come from the recipe's [captions] table (for a folder, that table's declared defaults);
`CaptionOverrides` replace single values of it. Unset thresholds come from the model
(tagger.thresholds.resolve: its authors' values for a known model, else 0.35 / 0.85), said in
the run's first line. A recipe's dataset is locked while it is captioned
(datasets/<name>/.lock, swimlatent_wrap.locks; a selection's source dataset, where its captions are
written), so a second run on it stops at once and names the first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from swimlatent_wrap import locks
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.images import images_in
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.recipe.tables import captions as captions_table
from swimlatent_wrap.tagger.caption import CaptionRule
from swimlatent_wrap.tagger.pipeline import TagJob, TagReport, tag_folder
from swimlatent_wrap.tagger.terminal import Terminal
from swimlatent_wrap.tagger.thresholds import Thresholds, resolve
from swimlatent_wrap.workdir import Workdir


@dataclass(frozen=True)
class CaptionOverrides:
    """[captions] values to use instead of the recipe's; None keeps the recipe's value."""

    model: str | None = None
    prefix: tuple[str, ...] | None = None
    general_threshold: float | None = None
    character_threshold: float | None = None
    blacklist: tuple[str, ...] | None = None
    rating_tag: bool | None = None
    batch_size: int | None = None
    resize: str | None = None

    def applied_to(self, values: dict[str, Any]) -> dict[str, Any]:
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return {**values, **given}


@dataclass(frozen=True)
class TagTarget:
    """Where a recipe's captions are written: a selection's images are captioned where they live, in
    the source dataset; the stage links them, captions included, into its own folder (stages.selection)."""

    images: Path
    manifest: Path
    only: tuple[str, ...] | None = None  # a selection: only these file names
    lock: Path | None = None  # the dataset folder locked while captions are written (datasets/<name>/)

    def image_files(self) -> list[Path]:
        found = images_in(self.images)
        if self.only is None:
            return found
        wanted = set(self.only)
        return [p for p in found if p.name in wanted]


def tag_target(recipe: Recipe, workdir: Workdir) -> TagTarget:
    dataset = recipe.dataset
    if dataset.source == "folder" and dataset.path is not None:
        return TagTarget(dataset.path, workdir.dataset_manifest(dataset.name), lock=workdir.dataset_dir(dataset.name))
    if dataset.source == "selection" and dataset.from_dataset is not None and dataset.selection is not None:
        from swimlatent_wrap.selection_file import read_selection

        return TagTarget(workdir.images_dir(dataset.from_dataset), workdir.dataset_manifest(dataset.from_dataset),
                         tuple(read_selection(dataset.selection)), lock=workdir.dataset_dir(dataset.from_dataset))
    return TagTarget(workdir.images_dir(dataset.name), workdir.dataset_manifest(dataset.name),
                     lock=workdir.dataset_dir(dataset.name))


def tag_dataset(recipe: Recipe, workdir: Workdir, *, force: bool = False,
                overrides: CaptionOverrides = CaptionOverrides()) -> TagReport:
    """Caption the recipe's images that have no caption yet (all of them with ``force``)."""
    target = tag_target(recipe, workdir)
    if not target.images.is_dir():
        dataset = recipe.dataset
        hint = ("" if dataset.source == "folder"
                else f"; collect it first: swimlatent collect {recipe.path}" if dataset.source == "danbooru"
                else f"; collect the recipe whose [dataset] name is {dataset.from_dataset!r} first "
                     "(e.g. recipes/swim-in-latent/ft.toml), then `swimlatent curate` this one")
        raise UserError(f"{target.images}: the dataset's images folder does not exist{hint}")
    values = overrides.applied_to(recipe.captions.as_dict())
    base = recipe.path.parent
    job = _job(values, target.images, target.manifest, target.only, force=force, model_base=base)
    thresholds = caption_thresholds(values, base)
    if target.lock is None:
        return _tag(job, thresholds)
    with locks.dataset(target.lock, doing="tag"):
        return _tag(job, thresholds)


def tag_images(images: Path, *, force: bool = False, overrides: CaptionOverrides = CaptionOverrides()) -> TagReport:
    """Caption every image of a folder; a workdir dataset's (datasets/<name>/images) is recorded in
    its manifest, one level up."""
    images = images.expanduser().resolve()
    manifest = images.parent / "manifest.sqlite" if images.name == "images" else None
    values = overrides.applied_to({f.name: f.default for f in captions_table.TABLE.fields})
    job = _job(values, images, manifest, None, force=force, model_base=None)
    thresholds = caption_thresholds(values)
    if manifest is None or not manifest.is_file():
        return _tag(job, thresholds)  # a plain folder: no dataset to lock
    with locks.dataset(images.parent, doing="tag"):
        return _tag(job, thresholds)


def _job(values: dict[str, Any], images: Path, manifest: Path | None, only: tuple[str, ...] | None, *, force: bool,
         model_base: Path | None) -> TagJob:
    from swimlatent_wrap.danbooru.manifest import ManifestFile

    thresholds = caption_thresholds(values, model_base)
    rule = CaptionRule(
        prefix=tuple(values["prefix"]),
        general_threshold=thresholds.general,
        character_threshold=thresholds.character,
        blacklist=tuple(values["blacklist"]),
        rating_tag=bool(values["rating_tag"]),
    )
    return TagJob(images=images, model=values["model"], rule=rule, batch_size=int(values["batch_size"]),
                  force=force, manifest=ManifestFile(manifest) if manifest is not None else None, only=only,
                  model_base=model_base, resize=str(values["resize"]))


def caption_thresholds(values: dict[str, Any], model_base: Path | None = None) -> Thresholds:
    """The thresholds [captions] ``values`` cut at: theirs where set, else the model's (tagger.thresholds)."""
    return resolve(values["model"], values.get("general_threshold"), values.get("character_threshold"), model_base)


def _tag(job: TagJob, thresholds: Thresholds) -> TagReport:
    terminal = Terminal()
    terminal.note(thresholds.line())  # the run's first line: what captions are cut at, and why
    report = tag_folder(job, terminal)
    print_report(report, terminal)
    left = untrainable(report, job)
    if left:
        raise UserError(*left)
    return report


def untrainable(report: TagReport, job: TagJob) -> list[str]:
    """What tagging could not fix by itself, one line each with what to do: images it cannot read,
    and captions that came out empty (train refuses both; running tag again changes nothing)."""
    lines = []
    if report.unreadable:
        shown = ", ".join(f"{path.name} ({reason})" for path, reason in report.unreadable[:3])
        more = f" and {len(report.unreadable) - 3} more" if len(report.unreadable) > 3 else ""
        lines.append(f"{len(report.unreadable)} image(s) in {report.folder} cannot be read: {shown}{more}; replace them "
                     "with good copies or move them out of the folder (train refuses an image without a caption), "
                     "then run tag again")
    if report.empty:
        rule = job.rule
        shown = ", ".join(path.name for path in report.empty[:3]) + (f" and {len(report.empty) - 3} more" if len(report.empty) > 3 else "")
        lines.append(f"{len(report.empty)} caption(s) came out empty ({shown}): no tag reached general_threshold "
                     f"{rule.general_threshold:g} / character_threshold {rule.character_threshold:g} outside the blacklist; "
                     "lower the thresholds, shorten the blacklist or set a [captions] prefix, then run tag again")
    return lines


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

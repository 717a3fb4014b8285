"""`swimlatent run RECIPE`: every step of the recipe's stage, in order, skipping a step whose inputs
have not changed since it last finished.

    danbooru dataset:   collect → tag → train
    folder dataset:                tag → train
    selection dataset:             tag → select → train
    LoRA from stage:<x>:           … → train → sweep → merge → stamp (release/<title>.safetensors)
                        (tag captions the chosen images where they live, in the source dataset;
                        select links them, captions included, into the stage's folder)

collect, tag and sweep are the stage functions behind `swimlatent collect` / `tag` / `sweep`
(stages.collect, stages.tag, stages.sweep), merge and stamp those behind `merge` / `stamp`.
Their input digests are kept in `runs/<stage>/steps.json`; train's in each run's run.json:

- collect: the recipe's [dataset] table (and DANBOORU_API_URL). collect itself resumes and skips
  what it has, so re-running it is cheap but it talks to the network: skipped when unchanged.
- tag: the [captions] table and the image list. Skipped when every image has a caption and the
  table is unchanged (or no tag run is recorded: the captions are the user's own); run with
  --force when the table changed since the captions were written.
- train: the resolved recipe, the dataset (names, sizes, caption bytes), the input model
  (for stage: refs, the sha256 recorded by the run that placed it) and the sd-scripts commit
  (record.train_inputs_digest, which `swimlatent train` records as well, so a stage trained by
  `train` is not trained again by `run`). Skipped when the last successful run had the same
  inputs and its model is still in place; an interrupted or failed run with the same inputs and a
  saved state is resumed instead of restarted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from swimlatent_wrap import atomic
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.images import has_caption, images_in
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.stages import record as records
from swimlatent_wrap.stages.record import digest_of
from swimlatent_wrap.workdir import MERGED_STAGE, Workdir

STEPS_FILE = "steps.json"


def say(text: str) -> None:
    print(f"swimlatent run: {text}", file=sys.stderr, flush=True)


class StepBook:
    """runs/<stage>/steps.json: the input digest each step had when it last finished."""

    def __init__(self, workdir: Workdir, stage: str) -> None:
        self.path = workdir.stage_runs(stage) / STEPS_FILE
        try:
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            self.data = {}

    def get(self, step: str) -> dict[str, Any]:
        return self.data.get(step) or {}

    def done(self, step: str, **fields: Any) -> None:
        self.data[step] = {**fields, "finished_at": records.now()}
        atomic.write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")


def caption_extension(recipe: Recipe) -> str:
    return records.recipe_caption_extension(recipe)


def image_dir(recipe: Recipe, workdir: Workdir) -> Path:
    from swimlatent_wrap.stages.plan import image_dir as plan_image_dir

    return plan_image_dir(recipe, workdir)


def uncaptioned(images: list[Path], extension: str) -> list[Path]:
    missing = [image for image in images if not has_caption(image, extension)]
    return missing


# ------------------------------------------------------------------------------------------
# The steps. Each returns None when it ran, or the reason it was skipped.


def collect_step(recipe: Recipe, workdir: Workdir, sd_scripts: Path, book: StepBook) -> str | None:
    from swimlatent_wrap.stages.collect import collect_dataset

    digest = digest_of({"dataset": recipe.resolved().get("dataset"), "api": os.environ.get("DANBOORU_API_URL")})
    if book.get("collect").get("digest") == digest and images_in(image_dir(recipe, workdir)):
        return f"[dataset] unchanged since {book.get('collect').get('finished_at')}"
    collect_dataset(recipe, workdir)
    book.done("collect", digest=digest)
    return None


def select_step(recipe: Recipe, workdir: Workdir, sd_scripts: Path, book: StepBook) -> str | None:
    from swimlatent_wrap.stages.selection import materialize_selection

    linked = materialize_selection(recipe, workdir)  # links only; idempotent and cheap, so always run
    say(f"select: {len(linked)} images linked into {image_dir(recipe, workdir)}")
    return None


def tag_step(recipe: Recipe, workdir: Workdir, sd_scripts: Path, book: StepBook) -> str | None:
    from swimlatent_wrap.stages.tag import tag_dataset, tag_target

    captions = digest_of(recipe.resolved().get("captions"))
    images = tag_target(recipe, workdir).image_files()
    digest = digest_of({"captions": captions, "images": [(p.name, p.stat().st_size) for p in images]})
    last = book.get("tag")
    missing = uncaptioned(images, caption_extension(recipe))
    changed = bool(last) and last.get("captions_digest") != captions
    if images and not missing and not changed:
        if last.get("digest") == digest:
            return f"[captions] and images unchanged since {last.get('finished_at')}"
        return f"all {len(images)} images already have captions"
    tag_dataset(recipe, workdir, force=changed)
    book.done("tag", digest=digest, captions_digest=captions)
    return None


def _identity(path: Path) -> Any:
    """Size and mtime of a file (None when absent): a 7 GB checkpoint is not re-hashed on every run."""
    from swimlatent_wrap.stages.verify import file_identity

    return file_identity(path) if path.is_file() else None


def train_step(recipe: Recipe, workdir: Workdir, sd_scripts: Path, book: StepBook, *, allow_cpu: bool) -> str | None:
    from swimlatent_wrap.stages.resume import states_of
    from swimlatent_wrap.stages.train import train_stage

    digest = records.train_inputs_digest(recipe, workdir, sd_scripts)  # the one `train` records too
    model = workdir.model_path(recipe.name)
    resume = False
    for run_dir, record in records.records(workdir, recipe.name):
        if record.get("inputs_digest") != digest:
            continue
        if record.get("status") == "ok":
            placed = (record.get("output") or {}).get("placed_identity")
            if model.is_file() and placed == _identity(model):
                return f"inputs unchanged since the run in {run_dir}, and its model is in place"
            break
        if any(s.kind != "end" for s in states_of(run_dir, recipe.name, record)):
            say(f"train: the run in {run_dir} ended {record.get('status')} with the same inputs; resuming from its saved state")
            resume = True
        break
    train_stage(recipe, workdir=workdir, sd_scripts=sd_scripts, resume=resume, allow_cpu=allow_cpu)
    return None


# ------------------------------------------------------------------------------------------
# After a LoRA is trained: sweep → merge (at [merge] ratio) → stamp → release/<title>.safetensors


def release_inputs(recipe: Recipe, workdir: Workdir) -> dict[str, Any]:
    base = recipe.model
    if base.kind != "stage":  # release_steps() gives these steps only to a LoRA on stage:<name>
        raise UserError(f"{recipe.path}: a release needs a LoRA recipe that starts from stage:<name>, not model = {base.text}")
    return {"model": _identity(workdir.model_path(base.stage)), "lora": _identity(workdir.model_path(recipe.name))}


def sweep_step(recipe: Recipe, workdir: Workdir, sd_scripts: Path, book: StepBook, *, allow_cpu: bool) -> str | None:
    from swimlatent_wrap.stages.sweep import run_sweep

    digest = digest_of({"sweep": recipe.resolved().get("sweep"), **release_inputs(recipe, workdir)})
    if book.get("sweep").get("digest") == digest:
        return f"the LoRA and [sweep] are unchanged since {book.get('sweep').get('finished_at')}"
    run_sweep(recipe, workdir, sd_scripts, allow_cpu=allow_cpu)
    book.done("sweep", digest=digest)
    return None


def merge_step(recipe: Recipe, workdir: Workdir, sd_scripts: Path, book: StepBook, *, allow_cpu: bool) -> str | None:
    from swimlatent_wrap.release.merge import run_merge

    digest = digest_of({"merge": recipe.resolved().get("merge"), **release_inputs(recipe, workdir)})
    merged = workdir.model_path(MERGED_STAGE)
    if book.get("merge").get("digest") == digest and _identity(merged) == book.get("merge").get("output"):
        return f"the models and [merge] are unchanged since {book.get('merge').get('finished_at')}"
    run_merge(recipe, workdir, sd_scripts)
    book.done("merge", digest=digest, output=_identity(merged))
    return None


def stamp_step(recipe: Recipe, workdir: Workdir, sd_scripts: Path, book: StepBook, *, allow_cpu: bool) -> str | None:
    from swimlatent_wrap.stages.stamp import release_file, stamp_model

    # without a [modelspec] title the release is titled after the stage, not the merge's temp file
    title = {} if recipe.modelspec.title else {"title": recipe.name}
    result = stamp_model(workdir.model_path(MERGED_STAGE), out=release_file(recipe, workdir), recipe=recipe, assignments=title)
    say(f"release: {result.path} (modelspec.hash_sha256 {result.metadata['modelspec.hash_sha256']})")
    return None


def release_steps(recipe: Recipe) -> list[tuple[str, Callable[..., str | None]]]:
    from swimlatent_wrap.stages.sweep import lora_from_stage

    if not lora_from_stage(recipe):
        return []
    return [("sweep", sweep_step), ("merge", merge_step), ("stamp", stamp_step)]


def plan_steps(recipe: Recipe) -> list[tuple[str, Callable[..., str | None]]]:
    source = recipe.dataset.source
    steps: list[tuple[str, Callable[..., str | None]]] = []
    if source == "danbooru":
        steps.append(("collect", collect_step))
    steps.append(("tag", tag_step))
    if source == "selection":
        steps.append(("select", select_step))
    return steps


def run_stage(recipe: Recipe, *, workdir: Workdir, sd_scripts: Path, allow_cpu: bool = False) -> None:
    book = StepBook(workdir, recipe.name)
    steps = plan_steps(recipe)
    after = release_steps(recipe)
    total = len(steps) + 1 + len(after)
    for number, (name, step) in enumerate(steps, 1):
        say(f"[{number}/{total}] {name}")
        skipped = step(recipe, workdir, sd_scripts, book)
        if skipped:
            say(f"[{number}/{total}] {name}: skipped: {skipped}")
    number = len(steps) + 1
    say(f"[{number}/{total}] train")
    skipped = train_step(recipe, workdir, sd_scripts, book, allow_cpu=allow_cpu)
    if skipped:
        say(f"[{number}/{total}] train: skipped: {skipped}")
        say(f"{recipe.name}: up to date: {workdir.model_path(recipe.name)}")
    for number, (name, step) in enumerate(after, number + 1):
        say(f"[{number}/{total}] {name}")
        skipped = step(recipe, workdir, sd_scripts, book, allow_cpu=allow_cpu)
        if skipped:
            say(f"[{number}/{total}] {name}: skipped: {skipped}")

"""`swimlatent curate RECIPE`: propose the images a selection dataset trains on, and a contact sheet.

The selection dataset is locked while curate writes into it (datasets/<name>/curate/), and its
source is held shared while it is read (swimlatent_wrap.locks); the source's manifest is read only."""

from __future__ import annotations

import argparse
from pathlib import Path

from swimlatent_wrap import atomic, locks
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.recipe.types import Dataset
from swimlatent_wrap.stages.selection import selection_source
from swimlatent_wrap.workdir import Workdir


def run(args: argparse.Namespace) -> int:
    from swimlatent_wrap.danbooru import curate

    recipe = load_recipe(args.recipe)
    dataset = recipe.dataset
    if dataset.source != "selection":
        raise UserError(f"{recipe.path}: [dataset] source is {dataset.source!r}; curate proposes images for a "
                        "source = \"selection\" dataset (e.g. recipes/swim-in-latent/lora.toml)")
    from_dataset, selection = selection_source(recipe)
    workdir = Workdir(args.workdir)
    images = workdir.images_dir(from_dataset)
    curate.require_source(images, from_dataset)
    with locks.dataset(workdir.dataset_dir(dataset.name), doing="curate"), \
            locks.dataset(workdir.dataset_dir(from_dataset), doing="curate (reading)", shared=True):
        return _curate(workdir, dataset, from_dataset, selection)


def _curate(workdir: Workdir, dataset: Dataset, from_dataset: str, selection: Path) -> int:
    from swimlatent_wrap.danbooru import curate

    images = workdir.images_dir(from_dataset)
    folder = workdir.dataset_dir(dataset.name) / "curate"
    found, unreadable = curate.candidates(images, workdir.dataset_manifest(from_dataset), folder / "thumbs")
    chosen, left_out = curate.propose(found, dataset.select_count, dataset.near_duplicate_bits)
    proposal = curate.selection_text(chosen)
    atomic.write_text(folder / "proposal.txt", proposal)
    existing = _names(selection)
    if existing:
        selected = set(existing)
        kept = f"kept your {selection} ({len(selected)} images); the new proposal is in {folder / 'proposal.txt'}"
    else:
        atomic.write_text(selection, proposal)
        selected = {c.name for c in chosen}
        kept = f"wrote {selection} ({len(chosen)} images)"
    page = curate.contact_sheet(found, selected, left_out, title=f"Curate {dataset.name} from {from_dataset}",
                                selection_file=selection, thumbs_href="thumbs")
    atomic.write_text(folder / "index.html", page)
    duplicates = sum(1 for reason in left_out.values() if reason.startswith("near-duplicate"))
    print(f"curate: {len(found)} candidates, {duplicates} near-duplicates left out, {len(chosen)} proposed; {kept}")
    if unreadable:
        print(f"curate: {len(unreadable)} unreadable image(s) skipped, e.g. {unreadable[0]}")
    print(f"review: {folder / 'index.html'}")
    return 0


def _names(selection: Path) -> list[str]:
    """The names already in the user's selection file ([] when it is absent or holds none)."""
    if not selection.is_file():
        return []
    lines = (line.strip() for line in selection.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]

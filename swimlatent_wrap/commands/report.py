"""`swimlatent report RECIPE`: summarise a collected dataset (terminal table + HTML page).

Read-only: the manifest is opened read-only and no lock is taken (a report may watch a collect that
is running), so a read-only dataset is reported too: the tables are printed, and the page, which
cannot be written there, is left out with a note.
"""

from __future__ import annotations

import sys

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.workdir import Workdir


def run(args) -> int:
    from swimlatent_wrap.danbooru.report import (
        PAGE_READ_ONLY,
        page_problem,
        print_table,
        summarize,
        write_report,
    )
    from swimlatent_wrap.danbooru.captions import print_captions
    from swimlatent_wrap.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    dataset = recipe.dataset
    # A selection is reported through the dataset it picks from (its manifest holds the metadata).
    name = dataset.from_dataset if dataset.source == "selection" and dataset.from_dataset else dataset.name
    workdir = Workdir(args.workdir)
    manifest = workdir.dataset_manifest(name)
    if not manifest.is_file():
        raise UserError(f"no manifest for dataset {name!r} at {manifest}; run `swimlatent collect` on its recipe first")
    notes: list[str] = []
    summary = summarize(manifest, notes=notes)
    for note in notes:
        print(f"report: note: {note}", file=sys.stderr)
    print_table(name, summary)
    captions = caption_statistics(recipe, workdir, name, manifest)
    if captions is not None:
        print_captions(captions)
    sys.stdout.flush()
    try:
        out = write_report(name, summary, workdir.dataset_dir(name), captions=captions)
    except OSError as error:
        if error.errno in PAGE_READ_ONLY:
            print(f"report: note: {page_problem(error, workdir.dataset_dir(name))}", file=sys.stderr)
            return 0
        raise UserError(page_problem(error, workdir.dataset_dir(name))) from None
    print(f"report: {out}")
    return 0


def caption_statistics(recipe, workdir: Workdir, name: str, manifest) -> dict | None:
    """The caption section's numbers, or None before any image is captioned (nothing tagged yet).

    max_token_length and the caption extension come from the recipe; tokens are counted by the CLIP
    tokenizer in the workdir's tokenizer cache when transformers or tokenizers can load it, else
    estimated (the output says which)."""
    from swimlatent_wrap.danbooru.captions import caption_stats, manifest_tags
    from swimlatent_wrap.images import has_caption, images_in
    from swimlatent_wrap.stages.caption_tokens import max_token_length, token_counter

    images_dir = workdir.dataset_dir(name) / "images"
    extension = str(recipe.dataset_config.get("caption_extension", ".txt"))
    categories, artists, characters = manifest_tags(manifest)
    images = images_in(images_dir)
    if not categories and not any(has_caption(image, extension) for image in images):
        return None  # not tagged yet: no caption section
    count, what = token_counter(workdir.tokenizer_cache())
    if count is None:
        print(f"report: note: caption lengths are estimated: {what}", file=sys.stderr)
    return caption_stats(images_dir, max_tokens=max_token_length(recipe.args), count_tokens=count,
                         tokenizer=what if count is not None else None, tagger_categories=categories,
                         artists=artists, characters=characters, extension=extension)

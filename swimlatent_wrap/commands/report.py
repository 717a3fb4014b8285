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
    from swimlatent_wrap.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    dataset = getattr(recipe, "dataset", None)
    if dataset is None:
        raise UserError(f"{args.recipe}: no [dataset] table; nothing to report")
    # A selection is reported through the dataset it picks from (its manifest holds the metadata).
    name = dataset.from_dataset if dataset.source == "selection" else dataset.name
    workdir = Workdir(args.workdir)
    manifest = workdir.dataset_manifest(name)
    if not manifest.is_file():
        raise UserError(f"no manifest for dataset {name!r} at {manifest}; run `swimlatent collect` on its recipe first")
    notes: list[str] = []
    summary = summarize(manifest, notes=notes)
    for note in notes:
        print(f"report: note: {note}", file=sys.stderr)
    print_table(name, summary)
    sys.stdout.flush()
    try:
        out = write_report(name, summary, workdir.dataset_dir(name))
    except OSError as error:
        if error.errno in PAGE_READ_ONLY:
            print(f"report: note: {page_problem(error, workdir.dataset_dir(name))}", file=sys.stderr)
            return 0
        raise UserError(page_problem(error, workdir.dataset_dir(name))) from None
    print(f"report: {out}")
    return 0

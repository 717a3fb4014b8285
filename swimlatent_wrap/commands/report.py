"""`swimlatent report RECIPE`: summarise a collected dataset (terminal table + HTML page)."""

from __future__ import annotations

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.workdir import Workdir


def run(args) -> int:
    from swimlatent_wrap.danbooru.report import print_table, summarize, write_report
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
    summary = summarize(manifest)
    print_table(name, summary)
    out = write_report(name, summary, workdir.dataset_dir(name))
    print(f"report: {out}")
    return 0

"""`swimlatent collect RECIPE [--limit N]`: download the recipe's Danbooru dataset (resumable, md5-verified)."""

from __future__ import annotations

import sys
import time

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.workdir import Workdir


def _recipe_and_danbooru(args):
    from swimlatent_wrap.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    dataset = getattr(recipe, "dataset", None)
    if dataset is None:
        raise UserError(f"{args.recipe}: no [dataset] table; nothing to collect")
    if dataset.source == "selection":
        raise UserError(f"{args.recipe}: [dataset] source = \"selection\" picks images from dataset "
                        f"{dataset.from_dataset!r}; collect the recipe whose [dataset] name is {dataset.from_dataset!r} "
                        "(e.g. recipes/swim-in-latent/ft.toml), then `swimlatent curate` this one")
    if dataset.source != "danbooru":
        raise UserError(f"{args.recipe}: [dataset] source = {dataset.source!r}; only source = \"danbooru\" is collected "
                        "(a folder dataset is used as it is)")
    if dataset.danbooru is None:
        raise UserError(f"{args.recipe}: [dataset] source = \"danbooru\" needs a [dataset.danbooru] table (count, splits, …)")
    return recipe, dataset, dataset.danbooru


def run(args) -> int:
    from swimlatent_wrap.danbooru import query as q
    from swimlatent_wrap.danbooru.client import Client, Credentials, api_root
    from swimlatent_wrap.danbooru.download import collect
    from swimlatent_wrap.danbooru.manifest import Manifest

    recipe, dataset, dan = _recipe_and_danbooru(args)
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be 1 or more, got {limit}")
    count = min(dan.count, limit) if limit else dan.count
    artists = None
    if dan.artists is not None:
        artists = q.read_artists(dan.artists)
        if not artists:
            raise UserError(f"{dan.artists}: no artist tags in it; put one Danbooru artist tag per line "
                            "(as in a search, underscores, no \"artist:\" prefix), or remove [dataset.danbooru] artists")
    problem = q.check_tag_limit(dan, artists)
    if problem:
        raise UserError(problem)
    try:
        plans = q.plan(dan, count, artists)
    except ValueError as error:
        raise UserError(f"{args.recipe}: [dataset.danbooru] {error}") from None

    workdir = Workdir(args.workdir)
    credentials = Credentials.from_env()
    client = Client(api_root(dan.api_root), rate=dan.requests_per_second, credentials=credentials)
    images = workdir.images_dir(dataset.name)
    started = time.monotonic()
    total = sum(p.target for p in plans)

    progress = None
    on_change = lambda stats: None  # noqa: E731
    if sys.stderr.isatty():
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeRemainingColumn(), TextColumn("{task.fields[extra]}"), transient=True)
        task = progress.add_task(f"collect {dataset.name}", total=total, extra="")

        def on_change(stats):
            progress.update(task, completed=stats.already + stats.downloaded,
                            extra=f"skipped {stats.skipped} failed {stats.failed} {stats.bytes / 1e6:.1f} MB")
        progress.start()
    manifest = Manifest(workdir.dataset_manifest(dataset.name))
    try:
        stats = collect(client, manifest, images, dan, plans, on_change)
    except Exception as error:  # transient errors that outlived every retry
        from swimlatent_wrap.danbooru.client import TransientError

        if isinstance(error, TransientError):
            raise UserError(client.redact(f"collect {dataset.name}: {error}"),
                            "what was downloaded is kept; run collect again later to go on") from None
        raise
    finally:
        manifest.close()
        if progress is not None:
            progress.stop()
    seconds = time.monotonic() - started
    have = stats.already + stats.downloaded
    print(f"collect {dataset.name}: {have}/{total} images ({stats.downloaded} downloaded now, {stats.already} before), "
          f"skipped {stats.skipped}, failed {stats.failed}, {stats.bytes} bytes, {seconds:.1f} s")
    from swimlatent_wrap.danbooru.report import summarize, write_html

    report = write_html(dataset.name, summarize(workdir.dataset_manifest(dataset.name)), workdir.dataset_dir(dataset.name) / "report")
    print(f"collect {dataset.name}: report at {report} (or `swimlatent report {args.recipe}`)")
    for line in stats.short:
        print(f"collect {dataset.name}: short of the target for {line}", file=sys.stderr)
    return 0

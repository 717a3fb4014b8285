"""Collect a recipe's Danbooru dataset: resumable, md5-verified, the split exact (danbooru.download),
with a progress bar on a terminal, a summary line and the dataset report at the end.

The dataset is locked for the whole run (datasets/<name>/.lock, swimlatent_wrap.locks): a second
collect, tag or select of it stops at once, naming this one, and touches nothing (two collects would
each remove the other's partial downloads). A full disk ends the run with one line saying so: every
image already downloaded stays in place and recorded, partial files are removed."""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Iterator, NoReturn

from swimlatent_wrap import locks
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.images import images_in
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.recipe.types import DatasetDanbooru
from swimlatent_wrap.workdir import Workdir

if TYPE_CHECKING:
    from swimlatent_wrap.danbooru.client import Client
    from swimlatent_wrap.danbooru.download import Stats


@dataclass(frozen=True)
class CollectResult:
    dataset: str
    stats: Stats
    report: Path  # the dataset report's HTML page


def danbooru_table(recipe: Recipe) -> DatasetDanbooru:
    """The recipe's [dataset.danbooru] table; a UserError saying what to do for any other dataset."""
    dataset = recipe.dataset
    if dataset.source == "selection":
        raise UserError(f"{recipe.path}: [dataset] source = \"selection\" picks images from dataset "
                        f"{dataset.from_dataset!r}; collect the recipe whose [dataset] name is {dataset.from_dataset!r} "
                        "(e.g. recipes/swim-in-latent/ft.toml), then `swimlatent curate` this one")
    if dataset.source != "danbooru":
        raise UserError(f"{recipe.path}: [dataset] source = {dataset.source!r}; only source = \"danbooru\" is collected "
                        "(a folder dataset is used as it is)")
    if dataset.danbooru is None:  # `validate` refuses this; kept for the type
        raise UserError(f"{recipe.path}: [dataset] source = \"danbooru\" needs a [dataset.danbooru] table (count, splits, …)")
    return dataset.danbooru


def collect_dataset(recipe: Recipe, workdir: Workdir, *, limit: int | None = None) -> CollectResult:
    """Download what the recipe's dataset still lacks into <workdir>/datasets/<name>/; ``limit`` caps
    the total, keeping the split. The API root is the recipe's unless env DANBOORU_API_URL is set."""
    from swimlatent_wrap.danbooru import query as q

    dan = danbooru_table(recipe)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be 1 or more, got {limit}")
    count = min(dan.count, limit) if limit else dan.count
    artists = None
    if dan.artists is not None:  # read now: the list may have changed since `validate`
        if (problem := q.artists_problem(dan.artists)) is not None:
            raise UserError(f"{dan.artists}: {problem}")
        artists = q.read_artists(dan.artists)
    try:
        q.plan(dan, count, artists)  # the recipe's own limit (or 2): refused before any request
    except q.PlanError as error:
        if dan.tag_limit is not None or not _has_credentials():
            raise UserError(f"{recipe.path}: [dataset.danbooru] {error}") from None
        # tag_limit unset and an account given: the account may allow more, read below
    except ValueError as error:  # a rating/duration the recipe check let through
        raise UserError(f"{recipe.path}: [dataset.danbooru] {error}") from None

    with locks.dataset(workdir.dataset_dir(recipe.dataset.name), doing="collect"):
        return _collect(recipe, workdir, dan, count, artists)


def _has_credentials() -> bool:
    from swimlatent_wrap.danbooru.client import Credentials

    return Credentials.from_env().login is not None


def _account_tag_limit(client: Client, dan: DatasetDanbooru, name: str) -> int | None:
    """The account's tag limit from /profile.json (0 = unlimited), when `tag_limit` is unset and
    credentials are given; None otherwise (the plan then assumes 2)."""
    from swimlatent_wrap.danbooru.client import TransientError, account_tag_limit

    if dan.tag_limit is not None or not client.credentials.login:
        return None
    try:
        profile = client.profile()
    except (TransientError, UserError) as error:
        if isinstance(error, UserError) and "HTTP 401" in str(error):
            raise  # wrong credentials: posts.json would refuse them too
        # e.g. 403: an API key limited to posts:index may not read the profile
        print(f"collect {name}: could not read the account's tag limit ({client.redact(str(error))}); assuming 2 "
              "(set [dataset.danbooru] tag_limit to say it)", file=sys.stderr, flush=True)
        return None
    limit, level = account_tag_limit(profile)
    print(f"collect {name}: account {client.credentials.login} is {level}: "
          + ("any number of tags per search" if limit == 0 else f"{limit} tags per search")
          + " (from /profile.json; [dataset.danbooru] tag_limit overrides it)")
    return limit


def _collect(recipe: Recipe, workdir: Workdir, dan: DatasetDanbooru, count: int,
             artists: list[str] | None) -> CollectResult:
    from swimlatent_wrap.danbooru import query as q
    from swimlatent_wrap.danbooru.client import (
        Client,
        Credentials,
        TransientError,
        api_root,
    )
    from swimlatent_wrap.danbooru.download import collect
    from swimlatent_wrap.danbooru.manifest import Manifest
    from swimlatent_wrap.danbooru.report import (
        page_problem,
        print_table,
        summarize,
        write_report,
    )

    name = recipe.dataset.name
    client = Client(api_root(dan.api_root), rate=dan.requests_per_second, credentials=Credentials.from_env(),
                    timeout=dan.timeout, max_tries=dan.max_tries, backoff=dan.retry_wait,
                    rate_limit_wait=dan.rate_limit_wait, rate_limit_budget=dan.rate_limit_budget,
                    notify=lambda line: print(f"collect {name}: {line}", file=sys.stderr, flush=True))
    try:
        account_limit = _account_tag_limit(client, dan, name)
        plan = q.plan(dan, count, artists, account_tag_limit=account_limit)
    except q.PlanError as error:
        raise UserError(f"{recipe.path}: [dataset.danbooru] {error}") from None
    images = workdir.images_dir(name)
    for line in q.describe(plan):
        print(f"collect {name}: {line}")
    started = time.monotonic()
    progress = _Progress(name, plan.total)
    manifest = Manifest(workdir.dataset_manifest(name))
    try:
        with _term_as_interrupt():
            stats = collect(client, manifest, images, dan, plan, progress)
    except TransientError as error:  # a request that outlived every retry
        raise UserError(client.redact(f"collect {name}: {error}"),
                        f"collect {name}: what was downloaded is kept; run collect again later to go on") from None
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise UserError(f"collect {name}: {error.filename or images}: {error.strerror}: free space on the disk holding "
                        f"{images}, then run collect again; the {len(images_in(images))} image(s) in place are kept and "
                        "recorded, partial downloads were removed") from None
    finally:
        progress.stop()
        manifest.close()
    seconds = time.monotonic() - started
    rate = stats.downloaded / seconds if seconds > 0 else 0.0
    print(f"collect {name}: {stats.have}/{plan.total} images ({stats.downloaded} downloaded now, "
          f"{stats.already} before{f', {stats.salvaged} completed from an interrupted run' if stats.salvaged else ''}), "
          f"skipped {stats.skipped}, failed {stats.failed}, {stats.bytes / 1e6:.1f} MB, {stats.pages} pages, "
          f"{client.requests_sent} requests ({client.retries} retried), {seconds:.1f} s, {rate:.2f} img/s")
    if client.rate_limit_holds:
        print(f"collect {name}: held every request {client.rate_limit_holds} time(s) for Danbooru's rate limit "
              f"(HTTP 429 without Retry-After), {client.rate_limit_held:g} s in all", file=sys.stderr)
    for note in stats.notes:
        print(f"collect {name}: note: {note}", file=sys.stderr)
    for line in stats.short:
        print(f"collect {name}: short of the target for {line}", file=sys.stderr)
    if stats.failed:
        print(f"collect {name}: {stats.failed} download(s) failed (reasons in the manifest and the report); network "
              "failures are tried again by the next run", file=sys.stderr)

    summary = summarize(workdir.dataset_manifest(name))
    print_table(name, summary, brief=True)
    try:
        page = write_report(name, summary, workdir.dataset_dir(name))
    except OSError as error:
        problem = page_problem(error, workdir.dataset_dir(name), again=f"`swimlatent report {recipe.path}`")
        raise UserError(f"collect {name}: the images are in place and recorded, but {problem}") from None
    print(f"collect {name}: report at {page} (full tables: swimlatent report {recipe.path})")
    return CollectResult(dataset=name, stats=stats, report=page)


class _Progress:
    """A rich progress bar on a terminal; nothing at all otherwise (the summary line is printed anyway)."""

    def __init__(self, name: str, total: int) -> None:
        self.bar = None
        self.started = time.monotonic()
        if not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=16), MofNCompleteColumn(),
                            TimeRemainingColumn(), TextColumn("{task.fields[extra]}"),
                            console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task(name, total=total, extra="")
        self.bar.start()

    def __call__(self, stats: Stats) -> None:
        if self.bar is None:
            return
        seconds = max(1e-6, time.monotonic() - self.started)
        rate = stats.downloaded / seconds
        self.bar.update(self.task, completed=stats.have,
                        extra=f"{stats.downloaded} new {stats.skipped} skip {stats.failed} fail "
                              f"{stats.bytes / 1e6:.1f} MB {rate:.1f} img/s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextlib.contextmanager
def _term_as_interrupt() -> Iterator[None]:
    """SIGTERM (a service manager, `kill`) stops collect as cleanly as Ctrl-C: what finished is recorded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Collecting: candidates in score order, eligibility, md5-verified downloads, resume, exact splits.

Invariants (they hold after a kill at any moment):
- A file `<md5>.<ext>` in images/ only ever appears by renaming a `<md5>.<ext>.part` whose md5 matched.
- Its post's row is committed as `planned` before the download starts, so every image has a row;
  `reconcile` at the next start marks a verified file `downloaded`, renames a complete, verified `.part`
  (killed between the last byte and the rename: not fetched again), and deletes any other `.part`.
- A stored cursor per search (the manifest's `cursors`) only ever names a post the collector has
  handled (skipped, found downloaded, or recorded `planned` before its download started), and every
  post before it in that search's order was handled too; it is written at each page read, at the end of
  a split and on an interrupt, so a kill leaves it behind, never ahead. A resumed run takes the split's
  unfinished rows first (`planned` without a file, failed but for a wrong md5), then each search from
  its cursor: `score:<=S` with the posts at S whose id is at or above the cursor's skipped. Scores that
  change between runs keep this safe: a post that dropped to or below the cursor is met again and
  passed over by its manifest row (downloaded, or skipped and checked again); one that rose past it had
  already been handled. What a cursor cannot see is a post that was below it and climbed above it, or a
  new post above it: the crawl is exact for the order as it was read. The cursor is kept per split and
  search with a fingerprint of the local rules, so a recipe change (tags checked locally, sizes, file
  types) reads that search from page 1 again; `Manifest.clear_cursors` (or `DELETE FROM cursors`) forces
  that too.
- Only `downloaded` rows count toward a split, and a split never has more downloads in flight than it
  still needs, so a split can never overshoot its target: the split stays exact, and a post whose file
  is in place is never fetched again.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urljoin

from swimlatent_wrap.danbooru import query as q
from swimlatent_wrap.danbooru.client import Client, FileGone, TransientError
from swimlatent_wrap.danbooru.manifest import Manifest, image_name
from swimlatent_wrap.danbooru.post import created_at, post_tags
from swimlatent_wrap.danbooru.stream import SEARCH, StreamContext, order_value, split_stream

MD5_TRIES = 2  # a wrong md5 is fetched once more, then the post is recorded as failed (for good)
MD5_FAILED = "md5 mismatch"
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")
_PART = re.compile(r"^([0-9a-f]{32})\.([a-z0-9]{1,8})\.part$")


@dataclass
class Stats:
    target: int = 0
    already: int = 0        # downloaded before this run (in the planned splits)
    downloaded: int = 0     # this run
    skipped: int = 0        # this run: posts passed over as ineligible
    failed: int = 0         # this run
    bytes: int = 0          # this run
    seen: int = 0           # posts on the pages read this run
    pages: int = 0
    salvaged: int = 0       # verified .part files renamed into place at the start
    short: list[str] = field(default_factory=list)   # splits that ran out of eligible posts
    notes: list[str] = field(default_factory=list)   # what the streams could not do

    @property
    def have(self) -> int:
        return self.already + self.downloaded


@dataclass(frozen=True)
class Rules:
    """What makes a post eligible for one split, checked locally on every post whatever the server did."""

    ratings: frozenset[str]
    split: str
    file_types: frozenset[str]
    min_width: int = 0
    min_height: int = 0
    min_pixels: int = 0
    cutoff: dt.datetime | None = None
    max_age: str = ""
    keep_deleted: bool = False
    required: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()


def rules_for(dan, plan: q.Plan, ratings: str, now: dt.datetime | None = None) -> Rules:
    return Rules(
        ratings=frozenset(ratings.split(",")), split=ratings,
        file_types=frozenset(t.lower().lstrip(".") for t in (dan.file_types or [])),
        min_width=int(dan.min_width or 0), min_height=int(dan.min_height or 0), min_pixels=int(dan.min_pixels or 0),
        cutoff=q.age_cutoff(dan.max_age, now), max_age=str(dan.max_age or ""), keep_deleted=bool(dan.keep_deleted),
        required=frozenset(plan.required), excluded=frozenset(plan.excluded))


def rules_fingerprint(rules: Rules) -> str:
    """The local rules a cursor was stored under, in a stable text (the age cutoff as its duration: it moves)."""
    return "|".join([",".join(sorted(rules.ratings)), ",".join(sorted(rules.file_types)),
                     f"{rules.min_width}x{rules.min_height}/{rules.min_pixels}", rules.max_age, str(rules.keep_deleted),
                     " ".join(sorted(rules.required)), " ".join(sorted(rules.excluded))])


def row_post(row) -> dict:
    """A manifest row as the /posts.json entry it came from (the fields collect reads)."""
    return {"id": row["id"], "md5": row["md5"], "rating": row["rating"], "score": row["score"],
            "fav_count": row["fav_count"], "created_at": row["created_at"], "file_ext": row["file_ext"],
            "file_size": row["file_size"], "image_width": row["width"], "image_height": row["height"],
            "file_url": row["file_url"], "source": row["source"], "tag_string_general": row["tags_general"] or "",
            "tag_string_character": row["tags_character"] or "", "tag_string_copyright": row["tags_copyright"] or "",
            "tag_string_artist": row["tags_artist"] or "", "tag_string_meta": row["tags_meta"] or ""}


def ineligible(post: dict, rules: Rules) -> str | None:
    """Why a post is not collected (the manifest's skip reason), or None when it is."""
    md5, url = post.get("md5"), post.get("file_url")
    if not url or not md5:
        return "hidden or banned: the API gave no file_url/md5"
    if not _MD5.match(str(md5)):
        return f"malformed md5 {str(md5)[:40]!r}"
    if post.get("is_deleted") and not rules.keep_deleted:
        return "deleted"
    ext = str(post.get("file_ext") or "").lower()
    if not _EXT.match(ext) or (rules.file_types and ext not in rules.file_types):
        return f"file type {ext or '?'} not in file_types"
    tags = post_tags(post)
    hits = sorted(tags & rules.excluded)
    if hits:
        return "blacklisted tag: " + " ".join(hits)
    missing = sorted(rules.required - tags)
    if missing:
        return "lacks tag: " + " ".join(missing)
    try:
        width, height = int(post.get("image_width") or 0), int(post.get("image_height") or 0)
    except (TypeError, ValueError):
        width = height = 0
    if width < rules.min_width or height < rules.min_height or width * height < rules.min_pixels:
        return f"too small: {width}x{height}"
    if rules.cutoff is not None:
        created = created_at(post)
        if created is None or created < rules.cutoff:
            return f"older than max_age {rules.max_age}" if created else "no created_at"
    # Last: the one reason that depends on the split, so a post's other reasons read the same from every split.
    if post.get("rating") not in rules.ratings:
        return f"rating {post.get('rating')} outside split {rules.split}"
    return None


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def part_path(images: Path, md5: str, ext: str) -> Path:
    return images / (image_name(md5, ext) + ".part")


def reconcile(manifest: Manifest, images: Path) -> int:
    """Start of a run: square the manifest with the files on disk (module docstring). Returns how many
    complete `.part` files were verified and renamed into place."""
    images.mkdir(parents=True, exist_ok=True)
    salvaged = 0
    for part in images.iterdir():
        match = _PART.match(part.name)
        if not match:
            continue  # not ours (the tagger's caption temp files live here too)
        md5, ext = match.groups()
        row = manifest.by_file(md5, ext)
        final = images / image_name(md5, ext)
        if row is not None and row["status"] == "planned" and not final.exists() and md5_of(part) == md5:
            os.replace(part, final)
            manifest.set_status(row["id"], "downloaded", None, attempts=1)
            salvaged += 1
        else:
            part.unlink(missing_ok=True)
    for row in manifest.placed():
        path = images / image_name(row["md5"], row["file_ext"])
        if row["status"] == "downloaded":
            if not path.is_file():
                manifest.set_status(row["id"], "seen", "its file was missing from images/: fetched again")
        elif path.is_file():
            # Renamed after a verified md5, killed before the manifest said so.
            if md5_of(path) == row["md5"]:
                manifest.set_status(row["id"], "downloaded", None, attempts=1)
            else:
                path.unlink()
    return salvaged


# --- one download ---------------------------------------------------------------------------------

def fetch(client: Client, post: dict, images: Path) -> tuple[str, str | None, int]:
    """Download one original, verify its md5, rename into place. Returns (status, reason, bytes)."""
    md5, ext = post["md5"], str(post["file_ext"]).lower()
    final = images / image_name(md5, ext)
    part = part_path(images, md5, ext)
    url = urljoin(client.root + "/", post["file_url"])
    try:
        for _ in range(MD5_TRIES):
            digest = [hashlib.md5()]
            with open(part, "wb") as handle:
                def reset():
                    handle.seek(0)
                    handle.truncate()
                    digest[0] = hashlib.md5()

                def write(chunk: bytes):
                    handle.write(chunk)
                    digest[0].update(chunk)

                try:
                    size = client.download(url, write, reset)
                except TransientError as error:
                    return "failed", f"network: {error}", 0
                except FileGone as error:
                    return "failed", f"file gone: {error}", 0
                handle.flush()
                os.fsync(handle.fileno())
            if digest[0].hexdigest() == md5:
                os.replace(part, final)
                return "downloaded", None, size
        return "failed", f"{MD5_FAILED}: the file served never matched the post's md5 ({MD5_TRIES} tries)", 0
    finally:
        part.unlink(missing_ok=True)


# --- the collection -------------------------------------------------------------------------------

class _Run:
    """One `collect`: the splits in turn, a bounded pool of downloads, every change committed."""

    def __init__(self, client: Client, manifest: Manifest, images: Path, dan, plan: q.Plan,
                 on_change: Callable[[Stats], None], today: dt.date | None) -> None:
        self.client, self.manifest, self.images, self.dan, self.plan = client, manifest, images, dan, plan
        self.on_change = on_change
        self.stats = Stats(target=plan.total)
        self.concurrency = max(1, int(dan.concurrency or 1))
        self.pool = cf.ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="danbooru-dl")
        self.inflight: dict[cf.Future, dict] = {}
        self.windows = q.windows(dan.max_age, int(dan.window_days or 0), today)
        self.context = StreamContext(client, plan.order, int(dan.page_limit or 1000), notes=self.stats.notes)
        self.now = dt.datetime.now(dt.timezone.utc)
        self.cursors: dict[str, tuple[int, int]] = {}   # this split's cursors not yet written
        self.cursor_split: tuple[str, str] = ("", "")

    def settle(self, future: cf.Future, post: dict, split: str, done: list[int]) -> None:
        status, reason, size = future.result()
        self.manifest.set_status(post["id"], status, reason, attempts=1)
        if status == "downloaded":
            done[0] += 1
            self.stats.downloaded += 1
            self.stats.bytes += size
        else:
            self.stats.failed += 1
        self.on_change(self.stats)

    def split(self, split: q.SplitPlan) -> None:
        rules = rules_for(self.dan, self.plan, split.ratings, self.now)
        done = [self.manifest.count(split.ratings)]
        if done[0] >= split.target:
            return

        def on_page(posts: list[dict]) -> None:
            self.manifest.record_page(posts, split.ratings, lambda post: ineligible(post, rules))
            self.stats.seen += len(posts)
            self.stats.pages += 1
            self.on_change(self.stats)

        fingerprint = rules_fingerprint(rules)
        starts = self.manifest.cursors(split.ratings, fingerprint)
        self.cursors, self.cursor_split = {}, (split.ratings, fingerprint)

        def on_page_saving(posts: list[dict]) -> None:
            self.save_cursors()  # every post handled so far: the cursors may pass them
            on_page(posts)

        self.context.on_page = on_page_saving
        stream = split_stream(self.context, split, self.windows, self.plan.mix, starts)
        if starts:  # what earlier runs took and did not finish lies before the cursors: first
            stream = itertools.chain((row_post(row) for row in self.manifest.pending(split.ratings, self.context.field)),
                                     stream)
        need = lambda: split.target - done[0] - len(self.inflight)  # noqa: E731
        taken: set[int] = set()
        exhausted = False
        while True:
            while not exhausted and len(self.inflight) < self.concurrency and need() > 0:
                post = next(stream, None)
                if post is None:
                    exhausted = True
                    break
                self.consider(post, split, rules, taken)
                key = post.get(SEARCH)
                if key is not None:  # handled: the search's cursor may pass it
                    self.cursors[key] = (order_value(post, self.context.field), post["id"])
            if not self.inflight:
                break
            finished, _ = cf.wait(list(self.inflight), return_when=cf.FIRST_COMPLETED)
            for future in finished:
                # Recorded first, forgotten after: an interrupt in between leaves it to `interrupted`.
                self.settle(future, self.inflight[future], split.ratings, done)
                del self.inflight[future]
        self.save_cursors()
        if done[0] < split.target:
            self.stats.short.append(f"rating {split.ratings}: {done[0]} of {split.target} (no more eligible posts found)")

    def consider(self, post: dict, split: q.SplitPlan, rules: Rules, taken: set[int]) -> None:
        """One candidate: passed over (downloaded, final failure, ineligible, a twin) or recorded
        `planned` and its download started."""
        if post["id"] in taken:
            return
        row = self.manifest.get(post["id"])
        if row is not None and row["status"] == "downloaded":
            return
        if row is not None and row["status"] == "failed" and str(row["reason"] or "").startswith(MD5_FAILED):
            return
        reason = ineligible(post, rules)
        if reason is None:
            twin = self.manifest.downloaded_with_md5(post["md5"], post["id"])
            if twin is not None:
                reason = f"same file as post {twin}"
                self.manifest.record(post, split.ratings, "skipped", reason)
        if reason:
            self.stats.skipped += 1
            self.on_change(self.stats)
            return
        self.manifest.record(post, split.ratings, "planned")
        taken.add(post["id"])
        self.inflight[self.pool.submit(fetch, self.client, post, self.images)] = post

    def save_cursors(self) -> None:
        if self.cursors:
            self.manifest.save_cursors(*self.cursor_split, self.cursors)
            self.cursors = {}

    def interrupted(self) -> None:
        """Stop the downloads, record the ones that did finish, leave no .part behind."""
        self.client.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for future, post in list(self.inflight.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                status, reason, _ = future.result()
                self.manifest.set_status(post["id"], status, reason, attempts=1)
        self.inflight.clear()
        self.save_cursors()  # only posts handled in full: a taken one is `planned` already
        # The interrupt may have come between a rename and its commit (or inside the commit, rolled
        # back): square the planned rows with the files now, as the next start would.
        reconcile(self.manifest, self.images)


def collect(client: Client, manifest: Manifest, images: Path, dan, plan: q.Plan,
            on_change: Callable[[Stats], None] = lambda stats: None, today: dt.date | None = None) -> Stats:
    """Download the plan's images into ``images`` (resuming what the manifest says is done)."""
    run = _Run(client, manifest, images, dan, plan, on_change, today)
    run.stats.salvaged = reconcile(manifest, images)
    run.stats.already = sum(manifest.count(split.ratings) for split in plan.splits)
    on_change(run.stats)
    try:
        for split in plan.splits:
            run.split(split)
    except BaseException:
        run.interrupted()
        raise
    run.pool.shutdown(wait=True)
    return run.stats

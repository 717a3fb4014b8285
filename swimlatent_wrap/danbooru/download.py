"""Collecting: candidates in score order, eligibility, md5-verified downloads, resume, exact splits.

Invariants (hold after a kill at any moment):
- A file `<md5>.<ext>` in images/ only ever appears by renaming a `.part` whose md5 matched.
- Its post's manifest row is inserted (status planned) before the download starts, so every image
  file has a row; `reconcile` at start marks verified files downloaded and removes stale `.part`s.
- Only `downloaded` rows count toward a split, and a split never has more downloads in flight than it
  still needs, so the split is exact and no post is fetched again once its file is in place.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urljoin

from swimlatent_wrap.danbooru import query as q
from swimlatent_wrap.danbooru.client import Client, TransientError
from swimlatent_wrap.danbooru.manifest import Manifest, image_name

MD5_TRIES = 2  # a wrong md5 is fetched once more, then the post is recorded as failed
MD5_FAILED = "md5 mismatch"
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")


@dataclass
class Stats:
    downloaded: int = 0     # this run
    skipped: int = 0        # this run
    failed: int = 0         # this run
    bytes: int = 0          # this run
    already: int = 0        # downloaded before this run
    short: list[str] = field(default_factory=list)  # splits that ran out of eligible posts


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reconcile(manifest: Manifest, images: Path) -> None:
    """Start of a run: drop stale .part files and make the manifest agree with the files on disk."""
    images.mkdir(parents=True, exist_ok=True)
    for part in images.glob("*.part"):
        part.unlink(missing_ok=True)
    for row in manifest.db.execute("SELECT id, md5, file_ext, status, reason FROM posts WHERE md5 IS NOT NULL").fetchall():
        if not row["md5"] or not row["file_ext"]:
            continue
        path = images / image_name(row["md5"], row["file_ext"])
        if row["status"] == "downloaded":
            if not path.is_file():
                manifest.set_status(row["id"], "planned", "file missing on disk; fetched again")
        elif path.is_file():
            # Renamed after a verified md5 but killed before the manifest said so.
            if md5_of(path) == row["md5"]:
                manifest.set_status(row["id"], "downloaded", None)
            else:
                path.unlink()


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def ineligible(post: dict, dan, ratings: str, cutoff: dt.datetime | None) -> str | None:
    """Why a post is not collected (the manifest's skip reason), or None when it is."""
    md5, url = post.get("md5"), post.get("file_url")
    if not url or not md5:
        return "hidden or banned: the API gave no file_url/md5"
    if not _MD5.match(str(md5)):
        return f"malformed md5 {str(md5)[:40]!r}"
    if post.get("is_deleted") and not dan.keep_deleted:
        return "deleted"
    ext = str(post.get("file_ext") or "").lower()
    allowed = [t.lower().lstrip(".") for t in (dan.file_types or [])]
    if not _EXT.match(ext) or (allowed and ext not in allowed):
        return f"file type {ext or '?'} not in file_types"
    if post.get("rating") not in ratings.split(","):
        return f"rating {post.get('rating')} outside split {ratings}"
    tags = set(str(post.get("tag_string") or "").split())
    for key in ("tag_string_general", "tag_string_character", "tag_string_copyright", "tag_string_artist", "tag_string_meta"):
        tags.update(str(post.get(key) or "").split())
    hits = sorted(tags.intersection(t.strip() for t in (dan.blacklist or [])))
    if hits:
        return "blacklisted tag: " + " ".join(hits)
    width, height = int(post.get("image_width") or 0), int(post.get("image_height") or 0)
    if width < (dan.min_width or 0) or height < (dan.min_height or 0) or width * height < (dan.min_pixels or 0):
        return f"too small: {width}x{height}"
    created = parse_time(post.get("created_at"))
    if cutoff is not None and created is not None and created < cutoff:
        return f"older than max_age {dan.max_age}"
    return None


# --- candidates -----------------------------------------------------------------------------------

def _pages(client: Client, tags: list[str], page_limit: int, seen: set[int], out: list | None = None,
           want: int | None = None) -> Iterator[dict]:
    """Score-ordered pages of one query. Returns True when the page cap stopped it, False when exhausted."""
    new = 0
    for page in range(1, max(1, page_limit) + 1):
        posts = client.posts(tags, page, q.PER_PAGE)
        if posts is None:  # 410: the server's cap came before ours
            return True
        for post in posts:
            if post.get("id") is None or post["id"] in seen:
                continue
            seen.add(post["id"])
            new += 1
            yield post
        if len(posts) < q.PER_PAGE:
            return False
        if want is not None and new >= want:
            return False
    return True


def candidates(client: Client, tags: list[str], dan, want: Callable[[], int]) -> Iterator[dict]:
    """Posts of one query, highest score first; windows by date past the page cap (see query.py)."""
    seen: set[int] = set()
    capped = yield from _pages(client, tags, dan.page_limit, seen)
    if not capped:
        return
    pending = q.yearly_windows(dan.max_age)
    merged: list[dict] = []
    target = want() * 2 + q.PER_PAGE
    while pending:
        window = pending.pop(0)
        gen = _pages(client, tags + [window.tag()], dan.page_limit, seen, want=target)
        while True:
            try:
                merged.append(next(gen))
            except StopIteration as stop:
                if stop.value:  # this window is capped too: halve it (its posts so far are kept)
                    pending[:0] = window.halves()
                break
    merged.sort(key=lambda p: (-(p.get("score") or 0), -p["id"]))
    yield from merged


def round_robin(streams: list[Iterator[dict]]) -> Iterator[dict]:
    live = list(streams)
    while live:
        for stream in list(live):
            try:
                yield next(stream)
            except StopIteration:
                live.remove(stream)


# --- one download ---------------------------------------------------------------------------------

def fetch(client: Client, post: dict, images: Path) -> tuple[str, str | None, int]:
    """Download one original, verify its md5, rename into place. Returns (status, reason, bytes)."""
    md5, ext = post["md5"], str(post["file_ext"]).lower()
    final = images / image_name(md5, ext)
    part = final.with_name(final.name + ".part")
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
                handle.flush()
                os.fsync(handle.fileno())
            if digest[0].hexdigest() == md5:
                os.replace(part, final)
                return "downloaded", None, size
        return "failed", f"{MD5_FAILED} after {MD5_TRIES} tries", 0
    finally:
        part.unlink(missing_ok=True)


# --- the collection -------------------------------------------------------------------------------

def collect_split(client: Client, manifest: Manifest, images: Path, dan, split: q.SplitPlan,
                  stats: Stats, pool: cf.ThreadPoolExecutor, concurrency: int,
                  on_change: Callable[[], None] = lambda: None) -> None:
    cutoff = None
    if dan.max_age:
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=q.age_days(dan.max_age))
    done = manifest.count(split.ratings)
    inflight: dict[cf.Future, dict] = {}
    need = lambda: max(0, split.target - done - len(inflight))  # noqa: E731
    if done >= split.target:
        return
    stream = round_robin([candidates(client, tags, dan, need) for tags in split.queries])
    exhausted = False
    try:
        while True:
            while not exhausted and len(inflight) < concurrency and need() > 0:
                try:
                    post = next(stream)
                except StopIteration:
                    exhausted = True
                    break
                row = manifest.get(post["id"])
                if row is not None and row["status"] == "downloaded":
                    continue
                if row is not None and row["status"] == "failed" and str(row["reason"] or "").startswith(MD5_FAILED):
                    continue
                if any(p["id"] == post["id"] for p in inflight.values()):
                    continue
                reason = ineligible(post, dan, split.ratings, cutoff)
                if reason:
                    if row is None or row["status"] != "skipped" or row["reason"] != reason:
                        manifest.record(post, split.ratings, "skipped", reason)
                    stats.skipped += 1
                    on_change()
                    continue
                manifest.record(post, split.ratings, "planned")
                inflight[pool.submit(fetch, client, post, images)] = post
            if not inflight:
                break
            finished, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
            for future in finished:
                post = inflight.pop(future)
                status, reason, size = future.result()
                manifest.set_status(post["id"], status, reason, attempts=1)
                if status == "downloaded":
                    done += 1
                    stats.downloaded += 1
                    stats.bytes += size
                else:
                    stats.failed += 1
                on_change()
    finally:
        # Interrupted: record whatever finished cleanly, so the manifest matches the files.
        for future, post in list(inflight.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                status, reason, size = future.result()
                manifest.set_status(post["id"], status, reason, attempts=1)
    if done < split.target:
        stats.short.append(f"rating {split.ratings}: {done} of {split.target} (no more eligible posts found)")


def collect(client: Client, manifest: Manifest, images: Path, dan, plans: list[q.SplitPlan],
            on_change: Callable[[Stats], None] = lambda s: None) -> Stats:
    stats = Stats()
    reconcile(manifest, images)
    stats.already = manifest.count()
    concurrency = max(1, int(dan.concurrency or 1))
    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="danbooru-dl")
    try:
        for split in plans:
            collect_split(client, manifest, images, dan, split, stats, pool, concurrency, lambda: on_change(stats))
    except BaseException:
        client.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for part in images.glob("*.part"):
            part.unlink(missing_ok=True)
        raise
    pool.shutdown(wait=True)
    return stats

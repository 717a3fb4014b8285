#!/usr/bin/env python3
"""Resuming a large collect: API requests and seconds before the first new download, from a
1 000 000-post manifest, with the stored cursor (manifest table `cursors`) against the peer in the same
run: the same resume without it, which reads every search from page 1 (the behaviour before cursors).

The manifest is synthetic (executemany): `--posts` rows, half per split of the shipped base recipe
(rating g / rating s,q,e), all downloaded, as a finished crawl of that many leaves it; the cursor run
also has each search's cursor where that crawl stopped, written through `Manifest.save_cursors` with
the key and rules collect itself computes. The loopback fake (tests/danbooru/fake.py over real HTTP,
page cap 1000 with its last page reversed, as Danbooru) serves the same posts lazily: rank r of a split
is computed, not stored (score 10^6 - r // 50, so 50 posts share each score; id descending within a
score). The recipe asks for a few more images than the manifest holds, so the first post past the
manifest is the first new download; the run is stopped there.

collect runs in-process (`danbooru.download.collect`), with `reconcile` (squaring the manifest with
images/, the same work with or without a cursor) left out: the bench does not write a million files.

    .venv/bin/python bench/bench_resume.py [--posts 1000000]

Writes bench/results/resume.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.danbooru.conftest import write_recipe  # noqa: E402
from tests.danbooru.fake import NOW, Fake, png_bytes  # noqa: E402

RESULTS = REPO / "bench" / "results"
TOP = 10**6  # the score of rank 0
TIES = 50
EXTRA = 3  # posts per split past the manifest (the new ones)
SPLITS = (("g", "g", 0), ("s,q,e", "s", 1))  # manifest split, rating served, id parity
CREATED = NOW.isoformat(timespec="milliseconds")


class Ranks:
    """A split's posts from rank ``first`` on, computed on demand (the fake slices it per page)."""

    def __init__(self, fake: "LazyFake", parity: int, rating: str, first: int) -> None:
        self.fake, self.parity, self.rating, self.first = fake, parity, rating, first

    def __len__(self) -> int:
        return max(0, self.fake.per_split + EXTRA - self.first)

    def __getitem__(self, part: slice) -> list[dict]:
        start, stop, _ = part.indices(len(self))
        return [self.fake.post(self.parity, self.rating, self.first + i) for i in range(start, stop)]


class LazyFake(Fake):
    def __init__(self, per_split: int) -> None:
        super().__init__()
        self.per_split = per_split
        self.new: dict[tuple[int, int], str] = {}
        for _, _, parity in SPLITS:
            for rank in range(per_split, per_split + EXTRA):
                data = png_bytes(rank * 2 + parity)
                md5 = hashlib.md5(data).hexdigest()
                self.files[md5] = data
                self.new[(parity, rank)] = md5
        self.first_file_at: float | None = None

    def ident(self, parity: int, rank: int) -> int:
        return 2 * (self.per_split + EXTRA - rank) + parity

    def post(self, parity: int, rating: str, rank: int) -> dict:
        post_id = self.ident(parity, rank)
        md5 = self.new.get((parity, rank)) or old_md5(post_id)
        return {"id": post_id, "score": score_of(rank), "fav_count": 0, "rating": rating, "md5": md5, "file_ext": "png",
                "file_size": 100, "image_width": 1024, "image_height": 1024, "is_deleted": False, "is_banned": False,
                "created_at": CREATED, "tag_string": "1girl solo", "tag_string_general": "1girl solo",
                "tag_string_artist": "", "tag_string_character": "", "tag_string_copyright": "",
                "tag_string_meta": "", "file_url": f"/data/{md5}.png", "source": ""}

    def search(self, query: str) -> tuple[int, object]:
        parity, rating, first = 0, "g", 0
        for term in query.split():
            name, _, value = term.partition(":")
            if name == "rating":
                parity, rating = (0, "g") if value == "g" else (1, "s")
            elif name == "score" and value.startswith("<="):
                first = max(0, (TOP - int(value[2:])) * TIES)
        return 200, Ranks(self, parity, rating, first)


def score_of(rank: int) -> int:
    return TOP - rank // TIES


def old_md5(post_id: int) -> str:
    return hashlib.md5(str(post_id).encode()).hexdigest()


def build_manifest(path: Path, fake: LazyFake) -> float:
    from swimlatent_wrap.danbooru.manifest import Manifest

    start = time.perf_counter()
    with Manifest(path) as store:
        now = time.time()
        with store.db:
            for split, rating, parity in SPLITS:
                rows = ((fake.ident(parity, r), old_md5(fake.ident(parity, r)), rating, score_of(r), CREATED, "png", 100,
                         1024, 1024, "1girl solo", split, "downloaded", 1, now, now) for r in range(fake.per_split))
                store.db.executemany(
                    "INSERT INTO posts (id, md5, rating, score, created_at, file_ext, file_size, width, height, "
                    "tags_general, split, status, attempts, first_seen, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return time.perf_counter() - start


class FirstDownload(Exception):
    pass


def resume(fake: LazyFake, manifest_path: Path, dan, plan, images: Path) -> dict:
    from swimlatent_wrap.danbooru import download
    from swimlatent_wrap.danbooru.client import Client
    from swimlatent_wrap.danbooru.manifest import Manifest

    fake.api_requests.clear()
    fake.file_requests.clear()
    client = Client(fake.url, rate=100000.0, backoff=0.01)

    def on_change(stats) -> None:
        if stats.downloaded:
            raise FirstDownload

    with Manifest(manifest_path) as store:
        start = time.perf_counter()
        try:
            download.collect(client, store, images, dan, plan, on_change)
        except FirstDownload:
            pass
        else:
            raise SystemExit("the resume ended without a new download")
        seconds = time.perf_counter() - start
    return {"api_requests": len(fake.api_requests), "seconds": round(seconds, 3),
            "file_requests": sum(fake.file_requests.values())}


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--posts", type=int, default=1_000_000, help="posts in the manifest (half per split)")
    cli.add_argument("--out", type=Path, default=RESULTS / "resume.json")
    options = cli.parse_args()
    from swimlatent_wrap.danbooru import download
    from swimlatent_wrap.danbooru import query as q
    from swimlatent_wrap.danbooru.manifest import Manifest
    from swimlatent_wrap.danbooru.stream import search_key
    from swimlatent_wrap.recipe import load_recipe

    per_split = options.posts // 2
    fake = LazyFake(per_split)
    fake.start()
    download.reconcile = lambda manifest, images: 0  # type: ignore[assignment]  # the same in both runs (docstring)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            tmp = Path(scratch)
            count = 2 * per_split + 2 * EXTRA
            recipe = write_recipe(tmp / "recipe", fake.url, count, rps=1000.0, extra="window_days = 0")
            dan = load_recipe(recipe).dataset.danbooru
            plan = q.plan(dan, count)
            path = tmp / "manifest.sqlite"
            built = build_manifest(path, fake)
            print(f"manifest: {2 * per_split} downloaded posts written in {built:.1f} s "
                  f"({path.stat().st_size / 1e6:.0f} MB)", flush=True)
            with Manifest(path) as store:  # where the crawl that wrote those rows stopped, as collect stores it
                for split_plan, (split, _, parity) in zip(plan.splits, SPLITS):
                    rules = download.rules_fingerprint(download.rules_for(dan, plan, split_plan.ratings))
                    last = per_split - 1
                    store.save_cursors(split_plan.ratings, rules, {
                        search_key(search): (score_of(last), fake.ident(parity, last)) for search in split_plan.searches})
            images = tmp / "images"
            images.mkdir()  # reconcile, left out, would make it
            with_cursor = resume(fake, path, dan, plan, images)
            print(f"with the stored cursor:   {with_cursor['api_requests']:>5} API requests, "
                  f"{with_cursor['seconds']:>7.2f} s before the first new download", flush=True)
            with Manifest(path) as store:
                store.clear_cursors()
            without = resume(fake, path, dan, plan, images)
            print(f"without (from page 1):    {without['api_requests']:>5} API requests, "
                  f"{without['seconds']:>7.2f} s before the first new download", flush=True)
    finally:
        fake.stop()
    ratio_requests = without["api_requests"] / max(1, with_cursor["api_requests"])
    ratio_seconds = without["seconds"] / max(1e-9, with_cursor["seconds"])
    print(f"ratio without / with: {ratio_requests:.0f}x the requests, {ratio_seconds:.0f}x the time")
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps({"posts": 2 * per_split, "manifest_build_seconds": round(built, 2),
                                       "with_cursor": with_cursor, "without_cursor": without,
                                       "ratio_requests": round(ratio_requests, 1), "ratio_seconds": round(ratio_seconds, 1),
                                       "load_average": os.getloadavg(), "cpus": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The last allowed page (Danbooru answers it ascending) and the stored cursor a resumed collect goes on from,
against the fake over real loopback HTTP; collect runs as a real child process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

from swimlatent_wrap.danbooru import query as q
from swimlatent_wrap.danbooru.client import Client
from swimlatent_wrap.danbooru.manifest import COLUMNS_SQL, SCHEMA_VERSION, Manifest
from swimlatent_wrap.danbooru.stream import StreamContext, split_stream
from tests.danbooru.conftest import write_recipe
from tests.helpers import REPO, run_cli

TERMS = ("rating:g", "age:<4y", "-status:deleted", "order:score")


def crawl(fake, page_limit):
    client = Client(fake.url, rate=10000.0, backoff=0.001)
    ctx = StreamContext(client, "score", page_limit)
    split = q.SplitPlan("g", 10**6, (q.Search(TERMS, "test", windowed=False),))
    return [p["id"] for p in split_stream(ctx, split, q.windows("4y", 0))], ctx


def tied_posts(fake, n=1500):
    for i in range(1, n + 1):
        fake.add_post(i, score=(i * 7) % 40, rating="g", days_old=1 + i % 900)  # ~37 posts share each score


def expected(fake):
    return [p["id"] for p in fake.eligible("g", exts=("png",))]


def test_the_fake_answers_the_last_allowed_page_ascending(fake):
    tied_posts(fake, 700)
    fake.page_cap = 3
    client = Client(fake.url, rate=10000.0, backoff=0.001)
    third = client.posts(list(TERMS), 3)
    assert third is not None and len(third) == 200
    keys = [(p["score"], p["id"]) for p in third]
    assert keys == sorted(keys)  # ascending, as pagination_extension.rb's `super.first(n).reverse`
    assert [p["id"] for p in third] == list(reversed(expected(fake)[400:600]))
    fake.reverse_last_page = False
    assert [p["id"] for p in client.posts(list(TERMS), 3) or []] == expected(fake)[400:600]


def test_a_crawl_across_the_page_cap_never_reads_the_last_allowed_page(fake):
    tied_posts(fake)
    fake.page_cap = 3  # the account's cap, as the recipe's page_limit says
    got, ctx = crawl(fake, page_limit=3)
    assert got == expected(fake)  # the right set, exactly in score order
    assert {page for _, page in fake.api_queries} == {1, 2}  # page 3 (= page_limit) is never asked for
    assert any("score:<=" in query for query, _ in fake.api_queries)
    assert not ctx.notes


def test_a_lower_server_cap_than_ours_is_found_by_its_reversed_page(fake):
    tied_posts(fake)
    fake.page_cap = 3  # but the recipe says 1000 (say, a Gold page_limit on a Member account)
    got, ctx = crawl(fake, page_limit=1000)
    assert got == expected(fake)
    assert "page cap is 3" in " ".join(ctx.notes)
    assert ctx.page_limit == 3
    assert sum(1 for _, page in fake.api_queries if page == 3) == 1  # read once, found out of order, never again


# -- the stored cursor ------------------------------------------------------------------------------

def populate(fake, per_split=1200, every=100):
    """Per split, ``per_split`` posts in score order (ties of 3), one in ``every`` eligible, the rest hidden
    (the API gives no file): most of each page is passed over, as when a crawl is deep in its search."""
    eligible = {}
    for split, rating, base in (("g", "g", 100000), ("s,q,e", "s", 50000)):
        eligible[split] = []
        for rank in range(per_split):
            post = fake.add_post(base - rank, score=10000 - rank // 3, rating=rating, hidden=rank % every != 0)
            if rank % every == 0:
                eligible[split].append(post)
    return eligible


def downloaded(workdir):
    db = sqlite3.connect(workdir / "datasets" / "dbtest" / "manifest.sqlite")
    try:
        return {split: {i for i, s in db.execute("SELECT id, split FROM posts WHERE status = 'downloaded'") if s == split}
                for split in ("g", "s,q,e")}
    finally:
        db.close()


def pages_by_split(fake):
    out: dict[str, list[int]] = {"g": [], "s,q,e": []}
    for query, page in fake.api_queries:
        out["g" if "rating:g" in query else "s,q,e"].append(page)
    return out


def test_a_resumed_collect_reads_only_the_remaining_pages(fake, tmp_path):
    eligible = populate(fake)
    recipe = write_recipe(tmp_path / "r", fake.url, 24, extra="window_days = 0\nretry_wait = 0.01\nmax_tries = 2")
    workdir = tmp_path / "w"
    first = run_cli("--workdir", str(workdir), "collect", str(recipe), "--limit", "10")
    assert first.returncode == 0, first.stderr
    assert "10/10 images" in first.stdout
    # Five per split: ranks 0..400, on pages 1-3 of each search.
    assert sorted(pages_by_split(fake)["g"]) == [1, 2, 3]
    fake.api_requests.clear()
    fake.api_queries.clear()
    fake.file_requests.clear()

    resumed = run_cli("--workdir", str(workdir), "collect", str(recipe))
    assert resumed.returncode == 0, resumed.stderr
    assert "24/24 images" in resumed.stdout
    got = downloaded(workdir)
    assert got == {split: {p["id"] for p in posts} for split, posts in eligible.items()}
    # Only what the first run had not read: the search goes on at score:<= its cursor, whose page 1
    # starts where the first run stopped (ranks 399..598) and whose page 4 holds the last one (rank 1100).
    for split, pages in pages_by_split(fake).items():
        assert pages == [1, 2, 3, 4], (split, pages)
    assert all("score:<=9867" in query for query, _ in fake.api_queries)  # rank 400's score
    assert len(fake.api_requests) == 8  # a crawl from page 1 would send 12
    assert sum(fake.file_requests.values()) == 14  # the 14 new images, none of the first 10 again


def test_the_cursor_stays_right_when_scores_change_and_a_download_failed(fake, tmp_path):
    eligible = populate(fake)
    g = eligible["g"]
    fake.file_500[g[1]["md5"]] = 2  # rank 100: both tries fail in the first run
    recipe = write_recipe(tmp_path / "r", fake.url, 24, extra="window_days = 0\nretry_wait = 0.01\nmax_tries = 2")
    workdir = tmp_path / "w"
    first = run_cli("--workdir", str(workdir), "collect", str(recipe), "--limit", "10")
    assert first.returncode == 0, first.stderr
    assert "failed 1" in first.stdout
    assert downloaded(workdir)["g"] == {p["id"] for p in g[:6]} - {g[1]["id"]}  # rank 500 taken instead
    # Between the runs: a downloaded post drops below the cursor, and one not yet read drops further.
    g[2]["score"] = 9000
    g[8]["score"] = 8990
    fake.file_requests.clear()
    fake.api_queries.clear()

    resumed = run_cli("--workdir", str(workdir), "collect", str(recipe))
    assert resumed.returncode == 0, resumed.stderr
    assert "24/24 images" in resumed.stdout
    assert downloaded(workdir) == {split: {p["id"] for p in posts} for split, posts in eligible.items()}
    assert fake.file_requests[g[1]["md5"]] == 1  # the failed one, tried again first (before the cursor)
    assert fake.file_requests[g[2]["md5"]] == 0  # met again below the cursor: its manifest row says it is in place
    assert all(count == 1 for count in fake.file_requests.values())
    assert all(page <= 5 for _, page in fake.api_queries)


def test_a_collect_killed_deep_in_its_search_resumes_from_its_cursor(fake, tmp_path):
    """SIGKILL while the first downloads are held, five pages into the search: the resumed run retries
    what was planned and reads on from the stored cursor, not from page 1."""
    eligible: dict[str, list[dict]] = {"g": [], "s,q,e": []}
    for split, rating, base in (("g", "g", 100000), ("s,q,e", "s", 50000)):
        for rank in range(1200):
            post = fake.add_post(base - rank, score=10000 - rank // 3, rating=rating, hidden=rank < 700 or rank % 100 != 0)
            if "md5" in post:
                eligible[split].append(post)  # ranks 700, 800, ..., 1100
    fake.hold_files = 2  # the first two downloads (ranks 700 and 800 of g) wait until the kill
    recipe = write_recipe(tmp_path / "r", fake.url, 10, extra="window_days = 0")
    workdir = tmp_path / "w"
    child = subprocess.Popen([sys.executable, "-m", "swimlatent_wrap", "--workdir", str(workdir), "collect", str(recipe)],
                             cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert fake.held.wait(60), "no download started"
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    fake.release.set()
    first = pages_by_split(fake)
    assert first["g"][:4] == [1, 2, 3, 4] and not first["s,q,e"]
    db = sqlite3.connect(workdir / "datasets" / "dbtest" / "manifest.sqlite")
    (value, post_id), = db.execute("SELECT value, post_id FROM cursors WHERE split = 'g'").fetchall()
    db.close()
    assert 100000 - 799 <= post_id <= 100000 - 599  # where the last page read found the crawl: behind, never ahead
    fake.api_queries.clear()
    fake.file_requests.clear()

    resumed = run_cli("--workdir", str(workdir), "collect", str(recipe))
    assert resumed.returncode == 0, resumed.stderr
    assert "10/10 images" in resumed.stdout
    assert downloaded(workdir) == {split: {p["id"] for p in posts} for split, posts in eligible.items()}
    assert sum(fake.file_requests.values()) == 10 and all(n == 1 for n in fake.file_requests.values())
    g = [(query, page) for query, page in fake.api_queries if "rating:g" in query]
    assert all(f"score:<={value}" in query for query, _ in g)  # never page 1 of the plain search again
    assert len(g) <= 3  # from rank 597 at most; from page 1 it would take 6
    assert pages_by_split(fake)["s,q,e"] == [1, 2, 3, 4, 5, 6]  # the split it had not reached: from page 1


def test_a_schema_2_manifest_is_upgraded_in_place_and_still_read_as_it_is(tmp_path):
    path = tmp_path / "manifest.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE posts ({COLUMNS_SQL})")
    db.execute("INSERT INTO posts (id, md5, score, split, status) VALUES (7, 'ab', 5, 'g', 'downloaded')")
    db.execute("CREATE TABLE tagger_captions (image TEXT)")  # another tool's table stays
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    with Manifest(path, readonly=True) as store:  # a read-only command reads schema 2 without upgrading it
        assert store.count("g") == 1
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
    with Manifest(path) as store:
        assert store.count("g") == 1
        assert store.cursors("g", "rules") == {}
        store.save_cursors("g", "rules", {"rating:g order:score": (5, 7)})
        assert store.cursors("g", "rules") == {"rating:g order:score": (5, 7)}
        assert store.cursors("g", "other rules") == {}  # stored under other local rules: not used
        store.clear_cursors()
        assert store.cursors("g", "rules") == {}
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {"posts", "cursors",
                                                                                                 "tagger_captions"}
    db.close()

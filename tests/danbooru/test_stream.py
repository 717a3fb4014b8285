"""Score-ordered streams against the fake: past the page cap, ties, windows, statement timeouts, lying servers."""

from __future__ import annotations

from itertools import islice

from swimlatent_wrap.danbooru import query as q
from swimlatent_wrap.danbooru.client import Client
from swimlatent_wrap.danbooru.stream import StreamContext, split_stream

TERMS = ("rating:g", "age:<4y", "-status:deleted", "order:score")


def stream(fake, *, window_days=0, page_limit=1000, max_tries=6, terms=TERMS, take=None):
    client = Client(fake.url, rate=10000.0, backoff=0.001, max_tries=max_tries)
    ctx = StreamContext(client, "score", page_limit)
    split = q.SplitPlan("g", 10**6, (q.Search(terms, "test", windowed=window_days > 0),))
    posts = split_stream(ctx, split, q.windows("4y", window_days))
    return list(islice(posts, take)), ctx


def global_order(fake):
    return [p["id"] for p in fake.eligible("g", exts=("png",))]


def test_past_the_page_cap_by_re_anchoring_on_score(fake):
    for i in range(1, 901):
        fake.add_post(i, score=i % 50, rating="g", days_old=1 + i % 1000)  # 18 posts share each score
    fake.page_cap = 1  # the server's cap (410) comes long before the recipe's
    got, ctx = stream(fake)
    assert [p["id"] for p in got] == global_order(fake)  # every post, exactly in Danbooru's order
    assert any("score:<=" in query for query, _ in fake.api_queries)
    assert not ctx.notes


def test_our_page_limit_is_respected_before_the_server_says_410(fake):
    for i in range(1, 501):
        fake.add_post(i, score=i, rating="g", days_old=1 + i)
    got, _ = stream(fake, page_limit=1)
    assert [p["id"] for p in got] == global_order(fake)
    assert {page for _, page in fake.api_queries} == {1}  # never asked for page 2


def test_more_ties_than_the_cap_holds_halve_the_date_window(fake):
    for i in range(1, 451):
        fake.add_post(i, score=7, rating="g", days_old=1 + (i * 3) % 1400)
    fake.page_cap = 1
    got, ctx = stream(fake)
    ids = [p["id"] for p in got]
    assert len(ids) == len(set(ids)) == 450
    assert any("date:" in query for query, _ in fake.api_queries)
    assert not ctx.notes


def test_a_server_ignoring_the_anchor_is_read_by_narrower_dates(fake):
    for i in range(1, 501):
        fake.add_post(i, score=(i * 7) % 500, rating="g", days_old=1 + (i * 3) % 1400)
    fake.page_cap, fake.ignore = 1, {"score"}
    got, ctx = stream(fake)
    assert [p["id"] for p in got] == global_order(fake)
    assert "ignored score:<=" in " ".join(ctx.notes)
    assert len(fake.api_requests) < 100


def test_a_server_ignoring_anchor_and_dates_is_noted_not_looped(fake):
    for i in range(1, 501):
        fake.add_post(i, score=i, rating="g", days_old=1 + i)
    fake.page_cap, fake.ignore = 1, {"score", "date"}
    got, ctx = stream(fake, window_days=365)
    assert [p["id"] for p in got] == global_order(fake)[:200]  # all the server lets anyone see
    notes = " ".join(ctx.notes)
    assert "ignored score:<=" in notes and "ignored date:" in notes and "not reachable" in notes
    assert len(fake.api_requests) < 30


def test_date_windows_merge_into_the_global_order_and_are_read_lazily(fake):
    for i in range(1, 601):
        fake.add_post(i, score=(i * 7919) % 1000, rating="g", days_old=1 + (i * 2) % 1400)
    top, _ = stream(fake, window_days=365, take=50)
    windows = len(q.windows("4y", 365))
    assert [p["id"] for p in top] == global_order(fake)[:50]
    assert len(fake.api_requests) == windows  # one page per window, nothing more for the first 50
    assert all("date:" in query for query, _ in fake.api_queries)
    everything, _ = stream(fake, window_days=365)
    assert [p["id"] for p in everything] == global_order(fake)


def test_statement_timeouts_split_the_window(fake):
    for i in range(1, 301):
        fake.add_post(i, score=(i * 31) % 300, rating="g", days_old=1 + (i * 5) % 1400)
    fake.timeout_broad, fake.broad_days = True, 400  # "The database timed out" for anything wider
    got, ctx = stream(fake, max_tries=2)
    assert [p["id"] for p in got] == global_order(fake)
    assert "narrower windows" in " ".join(ctx.notes)

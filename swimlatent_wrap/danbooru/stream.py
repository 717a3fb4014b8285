"""Posts of a search in Danbooru's order (highest score first), read lazily, past the page cap.

A window stream reads one search inside one date window, numbered page by numbered page, in the
server's `order:score` order (score desc, id desc). At the page cap (`page_limit` pages read, or HTTP
410) it re-anchors: the same search plus `score:<=S`, S the lowest score it has yielded, from page 1
again, skipping the posts it has already yielded (ties at S). That is exact keyset pagination on a free
metatag, so the page cap never hides a post. Only when more than page_limit × 200 posts share one
score inside the window does it make no progress; then the window is halved by date and both halves
go on from S. A window whose search keeps failing with one of Danbooru's two "too slow" 500s ("The database
timed out running your query." and "Your request took too long to complete and was canceled.") is halved too.

The last allowed page is never read: at `page == page_limit` Danbooru switches paging mode
(`pagination_extension.rb`) and returns that page in ascending order, so a window stops at page
page_limit - 1 and re-anchors there instead. Every page is also checked: a page that is not in
(value desc, id desc) order, or starts above the page before it, is the server's last allowed page
coming earlier than our `page_limit` (an account with a lower cap; learned when the page is
ascending) or a score that changed while the pages were read: it is not used, and the window
re-anchors, which is exact whatever that page held. Only a first page is sorted locally instead (a
cap of 1 leaves nothing else to read).

A stored cursor (`start`, the (value, id) of the last post the collector handled in that search, kept
in the manifest) resumes a window at `score:<=value`, skipping the posts at that value with an id at or
above the cursor's (those came first in the order): download.py says why that stays right when scores
change between runs.

Streams are merged by score with a heap (k-way merge), lazily: a window's next page is fetched only
when its posts are about to be needed. The merged order is the global order of the search.

The server's filtering is verified rather than trusted: a post above the anchor means the server
ignored `score:<=` (noted; from then on windows past the cap are narrowed by date only), and a post
outside its date window means it ignores `date:` (noted; the merge drops the duplicates, so the order
stays exact, and windows are no longer halved).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from swimlatent_wrap.danbooru import query as q
from swimlatent_wrap.danbooru.client import Client, TransientError, is_timeout_error
from swimlatent_wrap.danbooru.post import created_at


@dataclass
class StreamContext:
    client: Client
    order: str = "score"
    page_limit: int = 1000
    on_page: Callable[[list[dict]], None] = lambda posts: None
    notes: list[str] = field(default_factory=list)
    pages: int = 0
    dates_ignored: bool = False
    anchor_ignored: bool = False

    @property
    def field(self) -> str:
        return q.ORDERS[self.order][0]

    @property
    def metatag(self) -> str:
        return q.ORDERS[self.order][1]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def order_value(post: dict, name: str) -> int:
    try:
        return int(post.get(name, 0))
    except (TypeError, ValueError):
        return 0


def sort_key(post: dict, name: str) -> tuple[int, int]:
    return (-order_value(post, name), -int(post.get("id") or 0))


def in_order(posts: list[dict], name: str, before: tuple[int, int] | None) -> bool:
    """Whether a page is in (value desc, id desc) order and starts at or below ``before`` (the last key
    of the page before it)."""
    keys = [sort_key(post, name) for post in posts if isinstance(post.get("id"), int)]
    if before is not None and keys and keys[0] < before:
        return False
    return all(a <= b for a, b in zip(keys, keys[1:]))


def window_stream(ctx: StreamContext, terms: Iterable[str], window: q.Window, seen: set[int],
                  after: int | None = None, label: str = "", start: tuple[int, int] | None = None) -> Iterator[dict]:
    """One search inside one window, highest first; re-anchors past the page cap (module docstring).
    ``start``: a stored cursor (value, id); only posts after it in the order are yielded."""
    terms = list(terms)
    if start is not None:
        after = start[0] if after is None else min(after, start[0])
    bound = after if not ctx.anchor_ignored else None  # posts still to come have an order value <= bound
    where = " ".join(window.terms()) or "the age window"
    while True:
        anchor = [f"{ctx.metatag}:<={bound}"] if bound is not None else []
        query = terms + window.terms() + anchor
        progressed, lowest, capped, short, anchor_failed = False, None, True, False, False
        previous: tuple[int, int] | None = None
        # Never page == page_limit: Danbooru answers it in another paging mode, ascending.
        last = ctx.page_limit - 1 if ctx.page_limit > 1 else 1
        for page in range(1, last + 1):
            try:
                posts = ctx.client.posts(query, page)
            except TransientError as error:
                halves = window.halves() if not ctx.dates_ignored else []
                # Only Danbooru's "too slow" 500s (client.is_timeout_error) are helped by a narrower
                # window; a server that is down is not, and fails the run.
                if is_timeout_error(error) and halves:
                    ctx.note(f"{label or 'search'}: HTTP {error.status} kept coming back for {where}; "
                             "read in narrower windows")
                    yield from _halves(ctx, terms, halves, seen, lowest if lowest is not None else bound, label, start)
                    return
                raise
            ctx.pages += 1
            if posts is None:  # 410: past the server's cap, which may come before ours
                capped = not short  # a short page just before it was the end of the results
                break
            if not posts:
                capped = False
                break
            # A short page is usually the last, but Danbooru can return fewer than asked mid-way
            # (gallery-dl #6886), so the next page is still read.
            short = len(posts) < q.PER_PAGE
            if not in_order(posts, ctx.field, previous):
                if page > 1:
                    # Not used: the window re-anchors on what it has yielded. An ascending page is the
                    # server's last allowed page, before ours: later windows stop short of it. Anything
                    # else out of order is a score that changed while the pages were read.
                    keys = [sort_key(post, ctx.field) for post in posts if isinstance(post.get("id"), int)]
                    if len(keys) > 1 and keys == sorted(keys, reverse=True):
                        ctx.page_limit = page
                        ctx.note(f"the server's page cap is {page} pages (its page {page} came back ascending); "
                                 f"re-anchored before it")
                    short = False
                    break
                posts = sorted(posts, key=lambda post: sort_key(post, ctx.field))
            if posts and isinstance(posts[-1].get("id"), int):
                previous = sort_key(posts[-1], ctx.field)
            ctx.on_page(posts)
            for post in posts:
                post_id = post.get("id")
                if not isinstance(post_id, int):
                    continue
                value = order_value(post, ctx.field)
                if bound is not None and value > bound:
                    anchor_failed = True
                    break
                if post_id in seen:
                    continue
                if start is not None and value == start[0] and post_id >= start[1]:
                    continue  # at the cursor's value and not after it: handled by an earlier run
                if window.tagged and not window.holds(created_at(post)):
                    ctx.dates_ignored = True
                    ctx.note("the server ignored date: windows; the merged order is still exact (duplicates are dropped)")
                seen.add(post_id)
                progressed = True
                lowest = value if lowest is None else min(lowest, value)
                yield post
            if anchor_failed:
                ctx.anchor_ignored = True
                ctx.note(f"the server ignored {ctx.metatag}:<=; past the page cap, windows are narrowed by date instead")
                break
        else:
            capped = not short  # our own page_limit: a short last page was the end
        if not capped:
            return
        if progressed and not ctx.anchor_ignored:
            bound = lowest
            continue
        # No progress past the cap by score (more posts share one score than the cap lets through, or
        # the server ignores the anchor): narrower dates are the way on.
        halves = window.halves() if not ctx.dates_ignored else []
        if not halves:
            ctx.note(f"{label or 'search'}: {where} holds more posts than the page cap lets through"
                     + (f" with {ctx.metatag} {bound}" if bound is not None else "") + "; the rest are not reachable")
            return
        yield from _halves(ctx, terms, halves, seen, bound, label, start)
        return


def _halves(ctx: StreamContext, terms: list[str], halves: list[q.Window], seen: set[int], bound: int | None,
            label: str, start: tuple[int, int] | None = None) -> Iterator[dict]:
    """Both halves of a window, merged; they skip what the whole window already yielded (`seen`)."""
    return merge([window_stream(ctx, terms, half, seen, bound, label, start) for half in halves], ctx.field)


def merge(streams: list[Iterator[dict]], name: str) -> Iterator[dict]:
    """K-way merge of streams each in (value desc, id desc) order; a post met twice is yielded once."""
    heap: list[tuple[tuple[int, int], int, dict]] = []
    for index, stream in enumerate(streams):
        post = next(stream, None)
        if post is not None:
            heapq.heappush(heap, (sort_key(post, name), index, post))
    emitted: set[int] = set()
    while heap:
        _, index, post = heapq.heappop(heap)
        following = next(streams[index], None)
        if following is not None:
            heapq.heappush(heap, (sort_key(following, name), index, following))
        if post["id"] in emitted:
            continue
        emitted.add(post["id"])
        yield post


def round_robin(streams: list[Iterator[dict]]) -> Iterator[dict]:
    """One post from each stream in turn (an artist list taken evenly); a post met twice is yielded once."""
    live = list(streams)
    emitted: set[int] = set()
    while live:
        for stream in list(live):
            for post in stream:
                if post["id"] not in emitted:
                    emitted.add(post["id"])
                    yield post
                    break
            else:
                live.remove(stream)


SEARCH = "_swimlatent_search"  # set on every post a split stream yields: the key of the search it came from


def search_key(search: q.Search) -> str:
    """A search's key for its stored cursor: its terms (which hold its rating, age, filters and order)."""
    return " ".join(search.terms)


def _tagged(stream: Iterator[dict], key: str) -> Iterator[dict]:
    for post in stream:
        post[SEARCH] = key
        yield post


def split_stream(ctx: StreamContext, split: q.SplitPlan, windows: list[q.Window], mix: str = "score",
                 starts: dict[str, tuple[int, int]] | None = None) -> Iterator[dict]:
    """Every post of one split's searches, in the order collect takes them; each post says its search
    (`SEARCH`). ``starts``: stored cursors by `search_key`; a search with one goes on after it. The
    cursor is a position in the search's own order, the same in every date window, so it holds when
    the windows move with the date."""
    whole = q.Window(windows[-1].start, windows[0].end, tagged=False)
    streams = []
    for search in split.searches:
        seen: set[int] = set()
        key = search_key(search)
        start = (starts or {}).get(key)
        parts = windows if search.windowed and len(windows) > 1 else [whole]
        parts_streams = [window_stream(ctx, search.terms, part, seen, label=search.label, start=start) for part in parts]
        one = parts_streams[0] if len(parts_streams) == 1 else merge(parts_streams, ctx.field)
        streams.append(_tagged(one, key))
    if len(streams) == 1:
        return streams[0]
    return merge(streams, ctx.field) if mix == "score" else round_robin(streams)

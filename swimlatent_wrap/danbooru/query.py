"""Query planning: which searches `swimlatent collect` sends to Danbooru, and in what order.

Facts relied on (reference/ecosystem.md §A):
- `limit` is clamped to 200, numbered pages stop at the account's page cap (410 beyond it);
  id cursors (b<id>/a<id>) reorder by id and so cannot continue a score-ordered crawl.
- Anonymous/Member accounts may use 2 tags, and `order:` counts as one: with `order:score` only one real
  tag (a user tag or an artist) fits. rating/age/date/status/filetype/width/height/mpixels are free.
- `age:<4y` means "created within the last 4 years"; `rating:s,q,e` is an OR over letters;
  deleted posts are returned unless `-status:deleted` is sent.

Windowing past the page cap (our choice, stated honestly):
  One score-ordered query reaches page_limit × 200 posts (200 000 for an ordinary account), so a
  30 000-image crawl normally never needs a window. When a query does reach the cap (the last
  allowed page was full, or the server answered 410), the crawl goes on inside date windows
  (`date:A...B`, yearly over the age window, a window halved again when it hits the cap too, down to
  one day). Every window is read in score order until it has `want` new posts (or is exhausted),
  and the windows' posts are then merged by score locally. The merged order equals the global
  score order as long as no window was itself capped before `want`; a window capped at one day is
  the remaining limitation (its lowest-scored posts beyond the cap are not seen).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

PER_PAGE = 200  # the server clamps limit to 1..200

RATINGS = ("g", "s", "q", "e")


@dataclass(frozen=True)
class SplitPlan:
    """One rating group: its search and how many images it contributes."""

    ratings: str  # "g" or "s,q,e": the manifest's `split` value
    target: int
    queries: list[list[str]] = field(default_factory=list)  # one tag list per artist (or one)


def split_targets(shares: list[float], count: int) -> list[int]:
    """Largest-remainder rounding: integers proportional to ``shares`` that sum to exactly ``count``."""
    total = sum(shares) or 1.0
    exact = [count * s / total for s in shares]
    floors = [int(x) for x in exact]
    left = count - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def normalise_ratings(text: str) -> str:
    letters = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if not part:
            continue
        letter = part[0]
        if letter not in RATINGS:
            raise ValueError(f"unknown rating {part!r} (use g, s, q, e)")
        if letter not in letters:
            letters.append(letter)
    if not letters:
        raise ValueError("no rating letters")
    return ",".join(letters)


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(y|yr|yrs|years?|mo|months?|w|weeks?|d|days?|h|min|s)\s*$")


def age_days(max_age: str) -> float:
    """Days in a Danbooru duration ("4y", "48mo", "30d"). A bare "m" is minutes on Danbooru: refused."""
    match = _AGE.match(str(max_age).lower())
    if not match:
        raise ValueError(f"max_age {max_age!r}: use a number and y, mo, w or d (e.g. \"4y\", \"48mo\")")
    n, unit = float(match.group(1)), match.group(2)
    if unit.startswith("y"):
        return n * 365.25
    if unit.startswith("mo"):
        return n * 30.4375
    if unit.startswith("w"):
        return n * 7
    if unit.startswith("d"):
        return n
    if unit == "h":
        return n / 24
    if unit == "min":
        return n / 1440
    return n / 86400


def base_tags(dan, ratings: str) -> list[str]:
    """Free metatags shared by every query of a split, then `order:` (which counts as a tag)."""
    tags = [f"rating:{ratings}"]
    if dan.max_age:
        tags.append(f"age:<{dan.max_age}")
    if not dan.keep_deleted:
        tags.append("-status:deleted")
    if dan.file_types:
        tags.append("filetype:" + ",".join(t.lower().lstrip(".") for t in dan.file_types))
    if dan.min_pixels:
        # Rounded down: the server filter may only widen; the exact pixel check is local (download.py).
        tags.append(f"mpixels:>={math.floor(dan.min_pixels / 1000) / 1000:g}")
    if dan.min_width:
        tags.append(f"width:>={dan.min_width}")
    if dan.min_height:
        tags.append(f"height:>={dan.min_height}")
    return tags


def order_tag(dan) -> str | None:
    return f"order:{dan.order}" if dan.order else None


def read_artists(path) -> list[str]:
    """Artist tags from a file: one per line, blank lines and # comments ignored."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and line not in names:
            names.append(line.replace(" ", "_"))
    return names


def plan(dan, count: int, artists: list[str] | None = None) -> list[SplitPlan]:
    """One SplitPlan per [[dataset.danbooru.splits]] (or one "g,s,q,e" group when none)."""
    splits = list(dan.splits or [])
    groups = [(normalise_ratings(s.ratings), float(s.share)) for s in splits] or [("g,s,q,e", 1.0)]
    targets = split_targets([share for _, share in groups], count)
    user_tags = [t for t in (dan.tags or []) if t.strip()]
    order = order_tag(dan)
    plans = []
    for (ratings, _), target in zip(groups, targets):
        tail = base_tags(dan, ratings) + ([order] if order else [])
        if artists:
            queries = [user_tags + [artist] + tail for artist in artists]
        else:
            queries = [user_tags + tail]
        plans.append(SplitPlan(ratings, target, queries))
    return plans


FREE_METATAGS = {
    "status", "rating", "limit", "is", "id", "date", "age", "filesize", "filetype", "parent", "child", "md5",
    "width", "height", "duration", "mpixels", "ratio", "score", "upvote", "downvotes", "favcount", "embedded",
    "tagcount", "pixiv_id", "pixiv",
}


def counted_tags(tags: list[str]) -> int:
    """How many terms count against the account's tag limit (free metatags do not; order: does)."""
    n = 0
    for tag in tags:
        name = tag.lstrip("-~").split(":", 1)[0].lower() if ":" in tag else None
        if name in FREE_METATAGS:
            continue
        n += 1
    return n


def check_tag_limit(dan, artists: list[str] | None) -> str | None:
    """A message when the planned queries would exceed [dataset.danbooru] tag_limit (the server says 422)."""
    worst = (dan.tags or []) + (["artist"] if artists else []) + ([order_tag(dan)] if order_tag(dan) else [])
    used = counted_tags(worst)
    if dan.tag_limit and used > dan.tag_limit:
        return (f"each query would use {used} tags ({', '.join(worst)}; order: counts as one) but "
                f"[dataset.danbooru] tag_limit is {dan.tag_limit}: use fewer [dataset.danbooru] tags "
                "(an artist list already takes one), or raise tag_limit if your account allows more (Gold: 6)")
    return None


# --- date windows ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    start: dt.date  # inclusive
    end: dt.date    # exclusive

    def tag(self) -> str:
        return f"date:{self.start.isoformat()}...{self.end.isoformat()}"

    def halves(self) -> list["Window"]:
        days = (self.end - self.start).days
        if days <= 1:
            return []
        mid = self.start + dt.timedelta(days=days // 2)
        return [Window(mid, self.end), Window(self.start, mid)]  # newest first


def yearly_windows(max_age: str | None, today: dt.date | None = None) -> list[Window]:
    """Yearly windows, newest first, covering the age window (one day of slack at each end)."""
    today = today or dt.date.today()
    end = today + dt.timedelta(days=1)
    days = age_days(max_age) if max_age else 365.25 * 20
    start = today - dt.timedelta(days=int(days) + 1)
    windows = []
    cursor = end
    while cursor > start:
        lower = max(start, cursor - dt.timedelta(days=365))
        windows.append(Window(lower, cursor))
        cursor = lower
    return windows

"""Query planning: which searches `swimlatent collect` sends to Danbooru, and what it checks locally.

Facts relied on (reference/ecosystem.md §A):
- `limit` is clamped to 200; numbered pages stop at the account's page cap (HTTP 410 beyond it); id
  cursors (b<id>/a<id>) reorder by id, so they cannot continue a score-ordered crawl.
- Anonymous/Member accounts may search 2 tags, Gold 6, Platinum and up any number (collect reads the
  account's limit from /profile.json when credentials are given and `tag_limit` is unset), and `order:`
  counts as one. Metatags such as
  rating/age/date/status/filetype/width/height/mpixels/score/favcount are free.
- `age:<4y` means "created within the last 4 years"; a bare `m` is minutes, months are `mo`; a year is a
  fixed 365.25 days and a month 365.25/12 days (duration_parser.rb), not calendar units.
- `rating:s,q,e` is an OR over first letters; deleted posts come back unless `-status:deleted` is sent.

What the planner decides:
- One target per [[dataset.danbooru.splits]], rounded so the targets add up to exactly the count.
- Per split, one search (or one per artist). The tag budget is spent in this order: `order:` and the
  artist (both required), then the recipe's `tags` while they fit, then the blacklist as `-tag` while it
  fits. What does not fit is checked locally on every post instead (the manifest records the reason), so
  a small account still gets the same posts, only with more pages read.
- Every eligibility rule is also checked locally (stream.py/download.py), whatever the server did.
- Searches without a tag of their own are read in date windows (`window_days`, yearly by default),
  each in score order, merged locally by score (stream.py): narrow queries stay clear of the statement
  timeout, and no single search goes deep into its page cap.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

PER_PAGE = 200  # the server clamps limit to 1..200
RATINGS = ("g", "s", "q", "e")

# Metatags that do not count against the tag limit (post_query.rb UNLIMITED_METATAGS).
FREE_METATAGS = frozenset({
    "status", "rating", "limit", "is", "id", "date", "age", "filesize", "filetype", "parent", "child", "md5",
    "width", "height", "duration", "mpixels", "ratio", "score", "upvote", "downvotes", "favcount", "embedded",
    "tagcount", "pixiv_id", "pixiv",
})

# order: value -> (post field compared, free metatag that bounds it for keyset re-anchoring)
ORDERS = {"score": ("score", "score"), "favcount": ("fav_count", "favcount")}

# Danbooru's duration_parser.rb: an integer and a unit (a bare or unknown unit means seconds there).
_UNITS = (("mo", "months", "month"), ("mi", "min", "minute", "minutes"), ("s", "sec", "second", "seconds"),
          ("h", "hour", "hours"), ("d", "day", "days"), ("w", "week", "weeks"), ("y", "yr", "year", "years"))
_UNIT_OF = {spelling: group[0] for group in _UNITS for spelling in group}
_SECONDS = {"mi": 60, "s": 1, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+)([a-z]+)$")
MAX_AGE_DAYS = 36525  # 100 years: longer than Danbooru has existed, and any date window or age fits in it


def duration_problem(text: str | None) -> str | None:
    """Why ``text`` is not a Danbooru age (None when it is, or when it is empty: no age limit)."""
    if not text:
        return None
    value = str(text).strip().lower()
    match = _DURATION.match(value)
    if match and match.group(2) == "m":
        return (f"{text!r}: Danbooru does not read a bare \"m\" as months; write months as \"mo\" "
                f"(e.g. \"{match.group(1)}mo\") or minutes as \"min\"")
    if not match or match.group(2) not in _UNIT_OF:
        return (f"{text!r}: use a whole number and one of y, mo, w, d, h, min, s (e.g. \"4y\", \"48mo\", \"30d\"); "
                "Danbooru reads anything else as seconds")
    number, unit = int(match.group(1)), _UNIT_OF[match.group(2)]
    days = number * {"y": 365.25, "mo": 365.25 / 12}.get(unit, _SECONDS.get(unit, 1) / 86400)  # as duration_seconds
    if number < 1 or days > MAX_AGE_DAYS:
        return (f"{text!r}: must be at least 1 and at most {MAX_AGE_DAYS // 365} years (Danbooru's oldest posts are from "
                f"2005); write \"\" for no age limit")
    return None


def _parse_duration(text: str) -> tuple[int, str]:
    problem = duration_problem(text)
    match = _DURATION.match(str(text).strip().lower())
    if problem or not match:
        raise ValueError(problem or "empty duration")
    number, unit = match.groups()
    return int(number), _UNIT_OF[unit]


# duration_parser.rb: `number * 365.25.days` for years and `number * (365.25.days / 12)` for months, fixed
# lengths (not calendar units: no leap-year or month-length arithmetic).
YEAR_SECONDS = 365.25 * 86400
MONTH_SECONDS = YEAR_SECONDS / 12


def duration_seconds(text: str) -> float:
    """A Danbooru duration ("4y", "48mo", "30d", "90min") in seconds, in Danbooru's own units."""
    number, unit = _parse_duration(text)
    return number * {"y": YEAR_SECONDS, "mo": MONTH_SECONDS}.get(unit, float(_SECONDS.get(unit, 1)))


def age_cutoff(max_age: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """The oldest created_at `age:<max_age` admits (None: no age limit): now minus the duration, with
    years and months the fixed 365.25 and 365.25/12 days Danbooru's duration parser uses."""
    if not max_age:
        return None
    now = now or dt.datetime.now(dt.timezone.utc)
    return now - dt.timedelta(seconds=duration_seconds(max_age))


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
    """"general, s" -> "g,s": Danbooru reads the first letter of each comma-separated value."""
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


EMPTY_ARTISTS = ("no artist tags in it; put one Danbooru artist tag per line (as in a search: underscores, no "
                 "\"artist:\" prefix), or remove [dataset.danbooru] artists")


def artists_problem(path) -> str | None:
    """What is wrong with an artists file (None when it lists at least one usable artist tag)."""
    try:
        names = read_artists(path)
    except (OSError, UnicodeDecodeError) as error:
        return f"cannot read it: {error}"
    for name in names:
        if name.startswith(("-", "~")) or "*" in name:
            return f"{name!r} is a search operator, not an artist tag; list artist tags only, one per line"
    return None if names else EMPTY_ARTISTS


def read_artists(path) -> list[str]:
    """Artist tags from a file: one per line, blank lines and # comments ignored."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.lower().startswith("artist:"):
            line = line[len("artist:"):].strip()
        line = line.replace(" ", "_")
        if line and line not in names:
            names.append(line)
    return names


def is_counted(term: str) -> bool:
    """Whether a search term counts against the tag limit (free metatags do not; order: does)."""
    name, colon, _ = term.lstrip("-~").partition(":")
    return not (colon and name.lower() in FREE_METATAGS)


def counted_tags(terms: list[str]) -> int:
    return sum(1 for term in terms if is_counted(term))


def _locally_checkable(term: str) -> bool:
    """A plain tag or a negated plain tag can be checked against a post's tag string."""
    body = term[1:] if term.startswith("-") else term
    return bool(body) and ":" not in body and not body.startswith("~") and "*" not in body


@dataclass(frozen=True)
class Search:
    """One Danbooru search: the terms sent as `tags=`, and whether it is read in date windows."""

    terms: tuple[str, ...]
    label: str
    windowed: bool


@dataclass(frozen=True)
class SplitPlan:
    ratings: str            # "g" or "s,q,e": the manifest's `split` value
    target: int
    searches: tuple[Search, ...]


@dataclass(frozen=True)
class Plan:
    splits: tuple[SplitPlan, ...]
    order: str                                  # "score" or "favcount"
    mix: str                                    # "score" or "even" (several searches per split)
    required: tuple[str, ...] = ()              # tags every post must have, checked locally
    excluded: tuple[str, ...] = ()              # tags no post may have, checked locally (blacklist too)
    notes: tuple[str, ...] = field(default=())  # what the planner moved out of the query, for the user

    @property
    def total(self) -> int:
        return sum(s.target for s in self.splits)


def base_terms(dan, ratings: str) -> list[str]:
    """Free metatags shared by every search of a split."""
    terms = [f"rating:{ratings}"]
    if dan.max_age:
        terms.append(f"age:<{str(dan.max_age).strip().lower()}")
    if not dan.keep_deleted:
        terms.append("-status:deleted")
    if dan.file_types:
        terms.append("filetype:" + ",".join(t.lower().lstrip(".") for t in dan.file_types))
    if dan.min_pixels:
        # Rounded down: the server filter may only widen; the exact pixel check is local.
        terms.append(f"mpixels:>={math.floor(dan.min_pixels / 1000) / 1000:g}")
    if dan.min_width:
        terms.append(f"width:>={dan.min_width}")
    if dan.min_height:
        terms.append(f"height:>={dan.min_height}")
    return terms


class PlanError(ValueError):
    """The recipe asks for a search no account of its tag_limit can make (message says what to change;
    ``key`` is the [dataset.danbooru] key to change)."""

    def __init__(self, message: str, key: str = "tag_limit") -> None:
        super().__init__(message)
        self.key = key


DEFAULT_TAG_LIMIT = 2  # anonymous and Member accounts: assumed unless the recipe or the account says otherwise


def effective_tag_limit(dan, account: int | None = None) -> int:
    """The tag limit a plan uses (0 = unlimited): the recipe's `tag_limit` when it is set, else the
    account's (read from /profile.json by collect, when credentials are given), else 2."""
    if dan.tag_limit is not None:
        return int(dan.tag_limit)
    if account is not None:
        return int(account)
    return DEFAULT_TAG_LIMIT


def plan(dan, count: int, artists: list[str] | None = None, *, account_tag_limit: int | None = None) -> Plan:
    """The searches of each [[dataset.danbooru.splits]] (one "g,s,q,e" group when none) for ``count`` images.
    ``account_tag_limit``: the account's limit (0 = unlimited), used when the recipe leaves `tag_limit` unset."""
    order = dan.order or "score"
    if order not in ORDERS:
        raise PlanError(f"order {order!r}: use one of {', '.join(ORDERS)}", key="order")
    tag_limit = effective_tag_limit(dan, account_tag_limit)
    limit = tag_limit or 10**6
    budget = limit - 1 - (1 if artists else 0)  # order: and the artist always go in the query
    if budget < 0:
        raise PlanError(f"tag_limit {tag_limit} cannot hold order:{order}" + (" and an artist" if artists else "")
                        + f" ({1 + bool(artists)} tags); raise [dataset.danbooru] tag_limit to what your account allows")
    user = [t.strip() for t in (dan.tags or []) if t.strip()]
    free_user = [t for t in user if not is_counted(t)]
    counted_user = [t for t in user if is_counted(t)]
    in_query = list(free_user)
    required: list[str] = []
    excluded: list[str] = []
    notes: list[str] = []
    for term in counted_user:
        if budget > 0:
            in_query.append(term)
            budget -= 1
        elif _locally_checkable(term):
            (excluded if term.startswith("-") else required).append(term.lstrip("-"))
        else:
            raise PlanError(f"tag {term!r} does not fit tag_limit {tag_limit} (order: counts as one"
                            + (", an artist as another" if artists else "") + ") and cannot be checked locally: "
                            "use fewer [dataset.danbooru] tags or raise tag_limit if your account allows more (Gold: 6)", key="tags")
    if required or excluded:
        notes.append(f"tag_limit {tag_limit}: checked locally instead of in the search: "
                     + " ".join(required + ["-" + t for t in excluded]))
    blacklist = [t.strip().lstrip("-") for t in (dan.blacklist or []) if t.strip()]
    for tag in blacklist:
        if budget > 0 and _locally_checkable(tag):
            in_query.append("-" + tag)
            budget -= 1
    excluded += [t for t in blacklist if t not in excluded]
    groups = [(normalise_ratings(s.ratings), float(s.share)) for s in (dan.splits or [])] or [("g,s,q,e", 1.0)]
    targets = split_targets([share for _, share in groups], count)
    own_tag = any(is_counted(t) for t in in_query) or bool(artists)
    windowed = bool(dan.window_days) and not own_tag
    splits = []
    for (ratings, _), target in zip(groups, targets):
        tail = base_terms(dan, ratings) + [f"order:{order}"]
        if artists:
            searches = tuple(Search(tuple(in_query + [artist] + tail), f"artist {artist}", windowed) for artist in artists)
        else:
            searches = (Search(tuple(in_query + tail), f"rating {ratings}", windowed),)
        splits.append(SplitPlan(ratings, target, searches))
    return Plan(tuple(splits), order, dan.artist_mix or "score", tuple(required), tuple(excluded), tuple(notes))


# --- date windows ---------------------------------------------------------------------------------

DANBOORU_START = dt.date(2005, 5, 1)  # no post is older


@dataclass(frozen=True)
class Window:
    """Created dates [start, end) as `date:start...end`; ``tagged`` False for the whole age range (no term)."""

    start: dt.date
    end: dt.date
    tagged: bool = True

    def terms(self) -> list[str]:
        return [f"date:{self.start.isoformat()}...{self.end.isoformat()}"] if self.tagged else []

    def halves(self) -> list["Window"]:
        days = (self.end - self.start).days
        if days <= 1:
            return []
        mid = self.start + dt.timedelta(days=days // 2)
        return [Window(mid, self.end), Window(self.start, mid)]

    def holds(self, created: dt.datetime | None) -> bool:
        """Whether a post created then can belong to this window. Danbooru reads dates in the user's
        time zone (US Eastern for anonymous users), so a day of slack on each side."""
        if not self.tagged or created is None:
            return True
        day = created.astimezone(dt.timezone.utc).date()
        return self.start - dt.timedelta(days=1) <= day < self.end + dt.timedelta(days=1)


def age_range(max_age: str | None, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The created dates the age window can hold, a day of slack at each end (time zones)."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    end = today + dt.timedelta(days=2)
    cutoff = age_cutoff(max_age, dt.datetime.combine(today, dt.time(12), dt.timezone.utc))
    start = max(cutoff.date() - dt.timedelta(days=1), DANBOORU_START) if cutoff else DANBOORU_START
    return start, end


def windows(max_age: str | None, window_days: int, today: dt.date | None = None) -> list[Window]:
    """Consecutive windows of ``window_days``, newest first, covering the age range; one untagged
    window (the age: term alone) when ``window_days`` is 0."""
    start, end = age_range(max_age, today)
    if not window_days:
        return [Window(start, end, tagged=False)]
    out, cursor = [], end
    while cursor > start:
        lower = cursor - dt.timedelta(days=window_days)
        if (lower - start).days < window_days // 2:
            lower = start  # a short remainder joins the oldest window
        out.append(Window(lower, cursor))
        cursor = lower
    return out


def describe(plan_: Plan) -> list[str]:
    """Human-readable lines: each split's target and searches (no credentials are ever part of a plan)."""
    lines = []
    for split in plan_.splits:
        searches = split.searches
        shown = " ".join(searches[0].terms) + (f"  (+{len(searches) - 1} more artists)" if len(searches) > 1 else "")
        lines.append(f"rating {split.ratings}: {split.target} images from: {shown}"
                     + ("  [date windows]" if searches[0].windowed else ""))
    lines.extend(plan_.notes)
    return lines

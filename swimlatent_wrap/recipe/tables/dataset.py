"""[dataset]: where the stage's images come from, and [dataset.danbooru]: how to collect them."""

from typing import Any
from urllib.parse import urlsplit

from swimlatent_wrap.danbooru.query import MAX_AGE_DAYS, duration_problem
from swimlatent_wrap.images import file_type_problem
from swimlatent_wrap.recipe.schema import BOOL, FLOAT, INT, REQUIRED, STR, Choice, Field, ListOf, PathKind, Table
from swimlatent_wrap.values import AT_LEAST_1, SHARE, Domain
from swimlatent_wrap.workdir import name_problem

PIXELS = Domain(0, 65535, why="pixels")


def _api_root(value: str) -> str | None:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an http(s) URL such as https://danbooru.donmai.us, got {value!r}"
    if parts.username or parts.password:
        return "credentials never go into a recipe; set DANBOORU_LOGIN and DANBOORU_API_KEY in the environment"
    return None


SPLIT = Table(
    name="splits",
    array=True,
    help="One [[dataset.danbooru.splits]] per rating group; shares add up to 1.",
    fields=[
        Field("ratings", STR, REQUIRED, 'Danbooru rating letters, comma-separated: "g", or "s,q,e"'),
        Field("share", FLOAT, REQUIRED, "fraction of `count` taken from this group", check=SHARE),
    ],
)


def _check_danbooru(values: dict[str, Any]) -> list[tuple[str, str]]:
    """Split shares add up to 1 and name real rating letters, each letter in one split only."""
    problems = []
    splits = values.get("splits") or []
    shares: list[float] = []
    seen: set[str] = set()
    for split in splits:
        if split is None:
            continue  # not a table: already reported
        ratings, share = split.ratings, split.share
        if share is not None:
            shares.append(share)
        letters = [part.strip()[:1].lower() for part in str(ratings or "").split(",") if part.strip()]
        bad = [l for l in letters if l not in "gsqe"]
        if bad or not letters:
            problems.append(("splits", f'ratings {ratings!r}: use the letters g, s, q, e (e.g. "g" or "s,q,e")'))
        if seen.intersection(letters):
            problems.append(("splits", f"rating {sorted(seen.intersection(letters))[0]} is in two splits"))
        seen.update(letters)
    if shares and abs(sum(shares) - 1.0) > 1e-6:
        problems.append(("splits", f"shares add up to {sum(shares):g}, not 1"))
    return problems


DANBOORU = Table(
    name="danbooru",
    help="How `swimlatent collect` queries Danbooru for this dataset.",
    fields=[
        Field("api_root", STR, "https://danbooru.donmai.us", "API root; env DANBOORU_API_URL overrides it", check=_api_root),
        Field("count", INT, REQUIRED, "how many images to collect in total", check=Domain(1, 10_000_000)),
        Field("max_age", STR, "4y", 'only posts created within this age, in Danbooru units: "4y", "48mo", "30d" '
              '(a bare "m" is minutes on Danbooru, so it is refused); "" for no limit', check=duration_problem),
        Field("order", Choice(("score", "favcount")), "score", "highest first by this: score (up minus down votes) or favcount"),
        Field("tags", ListOf(STR), [], "search tags added to every query; those past `tag_limit` are checked locally"),
        Field("artists", PathKind(), None, "file with one Danbooru artist tag per line; collect from these artists only"),
        Field("artist_mix", Choice(("score", "even")), "score",
              "with `artists`: score = the highest-scored posts of all listed artists together; "
              "even = taken from each artist in turn"),
        Field("blacklist", ListOf(STR), [], "posts with any of these tags are skipped (in the query while `tag_limit` has room)"),
        Field("min_width", INT, 0, "skip posts narrower than this", check=PIXELS),
        Field("min_height", INT, 0, "skip posts shorter than this", check=PIXELS),
        Field("min_pixels", INT, 0, "skip posts with fewer pixels (width × height)", check=Domain(0, 65535**2)),
        Field("file_types", ListOf(STR), ["jpg", "png", "webp"], "file extensions to keep (image types sd-scripts trains on)",
              check=file_type_problem),
        Field("requests_per_second", FLOAT, 1.0, "pacing of API and file requests together (Danbooru asks for about 1/s)",
              check=Domain(0, 1000, low_open=True, why="requests per second")),
        Field("concurrency", INT, 2, "downloads in flight at once (search pages are read one at a time beside them)",
              check=Domain(1, 64)),
        Field("timeout", FLOAT, 30.0, "seconds to wait for a connection or for the next bytes of an answer", check=Domain(0, 3600, low_open=True, why="seconds")),
        Field("retry_wait", FLOAT, 1.0, "seconds before the first retry, doubled for each next one (at most 60); "
              "a 429's Retry-After is waited instead", check=Domain(0, 3600, low_open=True, why="seconds")),
        Field("max_tries", INT, 6, "tries per request on 5xx, timeouts, dropped connections and a 429 with Retry-After",
              check=Domain(1, 100)),
        Field("rate_limit_wait", FLOAT, 60.0, "seconds every request is held after a 429 without Retry-After "
              "(Danbooru's own, which says to wait a minute); such holds do not use up max_tries",
              check=Domain(0, 3600, low_open=True, why="seconds")),
        Field("rate_limit_budget", FLOAT, 900.0, "seconds of those holds, in all, before collect gives up "
              "(what was downloaded is kept)", check=Domain(0, 86400, why="seconds")),
        Field("page_limit", INT, 1000, "numbered-page cap of the account (1000 ordinary, 5000 Gold+)", check=Domain(1, 100_000)),
        Field("tag_limit", INT, None, "tags per query the account may use (2 anonymous/Member, 6 Gold, 0 = no limit); "
              "order: counts as one; unset: read from the account (/profile.json) when DANBOORU_LOGIN is set, else 2",
              check=Domain(0, 100)),
        Field("window_days", INT, 365, "searches without a tag of their own are read in date windows this long, "
              "merged by score (narrow queries stay under Danbooru's statement timeout); 0 = one search",
              check=Domain(0, MAX_AGE_DAYS, why="days; 100 years at most")),
        Field("keep_deleted", BOOL, False, "also collect deleted posts (default adds -status:deleted)"),
    ],
    subtables=[SPLIT],
    check=_check_danbooru,
)

TABLE = Table(
    name="dataset",
    help="The images this stage trains on. Captions are `<stem>.txt` beside each image.",
    fields=[
        Field("name", STR, REQUIRED, "folder under <workdir>/datasets/ holding images/, captions and manifest.sqlite",
              check=name_problem),
        Field("source", Choice(("danbooru", "folder", "selection")), "danbooru",
              "danbooru: collected by `swimlatent collect`; folder: your own images at `path`; "
              "selection: the images listed in `selection`, taken from dataset `from_dataset`"),
        Field("path", PathKind(folder=True), None, "source = folder: the folder of images (and captions)"),
        Field("from_dataset", STR, None, "source = selection: the dataset the selection picks from", check=name_problem),
        Field("selection", PathKind(must_exist=False), None, "source = selection: plain text file, one image file name per line (`swimlatent curate` writes it)"),
        Field("metadata_file", PathKind(), None, "an sd-scripts fine-tuning metadata JSON instead of caption files (needs cached latents)"),
        Field("num_repeats", INT, 1, "times each image is seen per epoch (sd-scripts num_repeats)", check=AT_LEAST_1),
        Field("select_count", INT, 100, "source = selection: how many images `swimlatent curate` proposes",
              check=AT_LEAST_1),
        Field("near_duplicate_bits", INT, 6, "source = selection: `swimlatent curate` leaves out an image whose 64-bit "
              "perceptual hash is within this many bits of one already chosen (0 = keep near-duplicates)",
              check=Domain(0, 64, why="bits of a 64-bit hash")),
    ],
    subtables=[DANBOORU],
)

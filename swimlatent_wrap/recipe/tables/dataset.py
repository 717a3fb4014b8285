"""[dataset]: where the stage's images come from, and [dataset.danbooru]: how to collect them."""

from swimlatent_wrap.recipe.schema import BOOL, FLOAT, INT, REQUIRED, STR, Choice, Field, ListOf, PathKind, Table


def _share(value: float) -> str | None:
    return None if 0.0 < value <= 1.0 else f"must be in (0, 1], got {value}"


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value}"


SPLIT = Table(
    name="splits",
    array=True,
    help="One [[dataset.danbooru.splits]] per rating group; shares add up to 1.",
    fields=[
        Field("ratings", STR, REQUIRED, 'Danbooru rating letters, comma-separated: "g", or "s,q,e"'),
        Field("share", FLOAT, REQUIRED, "fraction of `count` taken from this group", check=_share),
    ],
)

def _check_danbooru(values: dict) -> list[tuple[str, str]]:
    """Split shares add up to 1 and name real rating letters, each letter in one split only."""
    problems = []
    splits = values.get("splits") or []
    shares, seen = [], set()
    for split in splits:
        get = split.get if isinstance(split, dict) else (lambda k, s=split: getattr(s, k, None))
        ratings, share = get("ratings"), get("share")
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
        Field("api_root", STR, "https://danbooru.donmai.us", "API root; env DANBOORU_API_URL overrides it"),
        Field("count", INT, REQUIRED, "how many images to collect in total", check=lambda v: None if v > 0 else "must be 1 or more"),
        Field("max_age", STR, "4y", 'only posts created within this age (Danbooru units: "4y", "48mo", "30d")'),
        Field("order", STR, "score", "Danbooru order (score = highest score first)"),
        Field("tags", ListOf(STR), [], "extra search tags added to every query"),
        Field("artists", PathKind(), None, "file with one Danbooru artist tag per line; collect from these artists only"),
        Field("blacklist", ListOf(STR), [], "posts with any of these tags are skipped"),
        Field("min_width", INT, 0, "skip posts narrower than this"),
        Field("min_height", INT, 0, "skip posts shorter than this"),
        Field("min_pixels", INT, 0, "skip posts with fewer pixels (width × height)"),
        Field("file_types", ListOf(STR), ["jpg", "png", "webp"], "file extensions to keep (images only by default)"),
        Field("requests_per_second", FLOAT, 1.0, "pacing of API and download requests together", check=_positive),
        Field("concurrency", INT, 2, "downloads in flight at once", check=lambda v: None if v >= 1 else "must be 1 or more"),
        Field("page_limit", INT, 1000, "numbered-page cap of the account (1000 ordinary, 5000 Gold+)"),
        Field("tag_limit", INT, 2, "tags per query the account may use (2 anonymous/Member, 6 Gold)"),
        Field("keep_deleted", BOOL, False, "also collect deleted posts (default adds -status:deleted)"),
    ],
    subtables=[SPLIT],
    check=_check_danbooru,
)

TABLE = Table(
    name="dataset",
    help="The images this stage trains on. Captions are `<stem>.txt` beside each image.",
    fields=[
        Field("name", STR, REQUIRED, "folder under <workdir>/datasets/ holding images/, captions and manifest.sqlite"),
        Field("source", Choice(("danbooru", "folder", "selection")), "danbooru",
              "danbooru: collected by `swimlatent collect`; folder: your own images at `path`; "
              "selection: the images listed in `selection`, taken from dataset `from_dataset`"),
        Field("path", PathKind(folder=True), None, "source = folder: the folder of images (and captions)"),
        Field("from_dataset", STR, None, "source = selection: the dataset the selection picks from"),
        Field("selection", PathKind(must_exist=False), None, "source = selection: plain text file, one image file name per line (`swimlatent curate` writes it)"),
        Field("metadata_file", PathKind(), None, "an sd-scripts fine-tuning metadata JSON instead of caption files (needs cached latents)"),
        Field("num_repeats", INT, 1, "times each image is seen per epoch (sd-scripts num_repeats)"),
        Field("select_count", INT, 100, "source = selection: how many images `swimlatent curate` proposes",
              check=lambda v: None if v >= 1 else "must be 1 or more"),
    ],
    subtables=[DANBOORU],
)

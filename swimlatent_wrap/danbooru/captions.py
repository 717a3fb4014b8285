"""Caption statistics for `swimlatent report`: what the captions beside the images say, once tagged.

Read from the caption files themselves (``<stem><extension>`` beside each image in the dataset's
images folder; a missing or blank file is an empty caption, as sd-scripts trains it), split on
commas. Counted per caption (a tag written twice in one caption counts once):

- tag frequency: the most frequent tags, and the rare ones (in one caption only, or the fewest);
- characters as tagged: caption tags the tagger recorded as character tags (its ``tagger_tags``
  rows in the manifest, category 4) or that a post's Danbooru character tags name;
- artists as tagged: caption tags that a post's Danbooru artist tags name (the tagger does not tag
  artists, so these are only the artist names a caption carries, e.g. from a prefix);
- empty captions, by image name;
- captions longer than ``max_token_length``: counted with ``count_tokens`` (the CLIP tokenizer, when
  the caller could load it) or else estimated: words, single digits and punctuation runs, CLIP's
  pre-tokenizer split, which undercounts (a long rare word is several BPE tokens), so it is a lower
  bound and said so.

Plain values in (the caller reads the recipe and the tokenizer cache); no recipe or stage imports.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Callable

from swimlatent_wrap.images import CAPTION_SUFFIX, caption_of, images_in

CHARACTER = 4
# CLIP's simple_tokenizer pattern with `re` (\p{L} as [^\W\d_], \p{N} as \d): one piece per pre-token.
_PIECES = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\w\s]|_)+",
                     re.IGNORECASE)
PAGE_LIST = 200  # names listed on the page (empty captions, over-long ones), then "and N more"
ESTIMATE_LABEL = "estimate (no CLIP tokenizer: words, digits and punctuation counted; a lower bound)"


def estimate_tokens(text: str) -> int:
    """CLIP pre-tokens of ``text`` (each is at least one BPE token)."""
    return len(_PIECES.findall(text.lower()))


def tag_key(tag: str) -> str:
    """A tag as captions and Danbooru both spell it, compared: "Long_Hair" and "long hair" are one."""
    return " ".join(tag.strip().lower().replace("_", " ").split())


def split_caption(text: str) -> list[str]:
    return [t for t in (" ".join(part.split()) for part in text.split(",")) if t]


def _most(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    """The ``n`` most frequent, ties by name (the same order on every run)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def caption_stats(images_dir: Path, *, max_tokens: int = 75, count_tokens: Callable[[str], int] | None = None,
                  tokenizer: str | None = None, tagger_categories: dict[str, int] | None = None,
                  artists: set[str] | None = None, characters: set[str] | None = None,
                  extension: str = CAPTION_SUFFIX, top: int = 20, rare: int = 20, examples: int = 10) -> dict:
    """The numbers; ``tokenizer`` names what ``count_tokens`` is (None: the estimate is used)."""
    images = images_in(images_dir)
    character_keys = {tag_key(t) for t, c in (tagger_categories or {}).items() if c == CHARACTER}
    character_keys |= {tag_key(t) for t in characters or ()}
    artist_keys = {tag_key(t) for t in artists or ()}
    counter = count_tokens if count_tokens is not None else estimate_tokens
    tags: Counter[str] = Counter()
    empty: list[str] = []
    long: list[tuple[str, int]] = []
    for image in images:
        try:
            text = caption_of(image, extension).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        parts = split_caption(text)
        if not parts:
            empty.append(image.name)
            continue
        tags.update(set(parts))
        # Each token covers at least one character that is not whitespace: a caption with no more such
        # characters than max_tokens cannot run past it, and needs no tokenizing (fast for 30,000).
        if sum(1 for ch in text if not ch.isspace()) <= max_tokens:
            continue
        n = counter(text.strip())
        if n > max_tokens:
            long.append((image.name, n))
    long.sort(key=lambda item: (-item[1], item[0]))
    by_key: dict[str, Counter[str]] = {"characters": Counter(), "artists": Counter()}
    for tag, n in tags.items():
        key = tag_key(tag)
        if key in character_keys:
            by_key["characters"][tag] += n
        if key in artist_keys:
            by_key["artists"][tag] += n
    rare_tags = sorted(tags.items(), key=lambda kv: (kv[1], kv[0]))[:rare]
    return {
        "images": len(images),
        "captioned": len(images) - len(empty),
        "distinct_tags": len(tags),
        "top_tags": _most(tags, top),
        "rare_tags": rare_tags,
        "once": sum(1 for n in tags.values() if n == 1),
        "characters": _most(by_key["characters"], top),
        "artists": _most(by_key["artists"], top),
        "empty": empty,
        "max_tokens": max_tokens,
        "long": long,
        "long_examples": long[:examples],
        "tokenizer": tokenizer,
        "counted_by": tokenizer or ESTIMATE_LABEL,
    }


def long_line(stats: dict) -> str:
    """One line: how many captions run past max_token_length, and how that was counted."""
    return (f"captions over max_token_length {stats['max_tokens']}: {len(stats['long'])} of {stats['captioned']} "
            f"(tokens counted by {stats['counted_by']}; sd-scripts truncates the rest)")


def print_captions(stats: dict, console=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(highlight=False)
    if not stats["images"]:
        console.print("captions: no images in the dataset's images folder")
        return
    console.print(f"captions: {stats['captioned']} of {stats['images']} images captioned, {len(stats['empty'])} empty; "
                  f"{stats['distinct_tags']} distinct tags, {stats['once']} in one caption only", soft_wrap=True)
    for key, title in (("top_tags", "caption tags, most frequent"), ("rare_tags", "caption tags, rarest"),
                       ("characters", "characters in captions"), ("artists", "artists in captions")):
        if not stats[key]:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("tag")
        table.add_column("captions", justify="right")
        for tag, n in stats[key]:
            table.add_row(escape(tag), str(n))
        console.print(table)
    if stats["empty"]:
        shown = stats["empty"][:10]
        more = len(stats["empty"]) - len(shown)
        console.print(escape(f"empty captions: {len(stats['empty'])}: " + ", ".join(shown) + (f" and {more} more" if more else "")),
                      soft_wrap=True)
    console.print(escape(long_line(stats)), soft_wrap=True)
    for name, n in stats["long_examples"]:
        console.print(escape(f"  {name}: {n} tokens"), soft_wrap=True)


def captions_html(stats: dict, bars: Callable[[list[tuple[str, int]]], str]) -> str:
    """The report page's caption section (``bars``: the page's bar-chart maker)."""
    import html

    if not stats["images"]:
        return "<h2>captions</h2><p class=none>no images</p>"
    parts = ["<h2>captions</h2>",
             f"<p>{stats['captioned']} of {stats['images']} images captioned, <b>{len(stats['empty'])}</b> empty; "
             f"{stats['distinct_tags']} distinct tags, {stats['once']} in one caption only</p>", "<div class=plots>"]
    for key, title in (("top_tags", "caption tags, most frequent"), ("rare_tags", "caption tags, rarest"),
                       ("characters", "characters in captions"), ("artists", "artists in captions")):
        parts.append(f"<section><h2>{title}</h2>{bars(stats[key])}</section>")
    parts.append("</div>")
    if stats["empty"]:
        shown = stats["empty"][:PAGE_LIST]
        more = len(stats["empty"]) - len(shown)
        parts.append(f"<h3>empty captions: {len(stats['empty'])}</h3><ul class=empty>"
                     + "".join(f"<li>{html.escape(name)}</li>" for name in shown)
                     + (f"<li>and {more} more</li>" if more else "") + "</ul>")
    parts.append(f"<p class=long>{html.escape(long_line(stats))}</p>")
    if stats["long"]:
        more = len(stats["long"]) - PAGE_LIST
        parts.append("<ul class=long>" + "".join(f"<li>{html.escape(name)}: {n} tokens</li>" for name, n in stats["long"][:PAGE_LIST])
                     + (f"<li>and {more} more</li>" if more > 0 else "") + "</ul>")
    return "".join(parts)


def manifest_tags(manifest: Path) -> tuple[dict[str, int], set[str], set[str]]:
    """(tagger tag -> category, Danbooru artist tags, Danbooru character tags) of the downloaded posts."""
    from swimlatent_wrap.danbooru.manifest import Manifest

    with Manifest(manifest, readonly=True) as store:
        categories = store.tagger_categories()
        rows = store.rows("downloaded")
    artists = {t for r in rows for t in (r["tags_artist"] or "").split()}
    characters = {t for r in rows for t in (r["tags_character"] or "").split()}
    return categories, artists, characters

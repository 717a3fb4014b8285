"""The dataset report: counts by rating, split, year, file type and resolution, score spread, top tags,
artists and characters, skips and failures by reason.

`summarize` reads manifest.sqlite; `print_table` draws it in the terminal (rich); `write_report` writes
`<dataset>/report/index.html` (inline-SVG plots, no plotting library) with a thumbnail contact sheet
of the highest-scored images (`report/thumbs/`, small JPEGs made once, linked to the originals).
"""

from __future__ import annotations

import errno
import html
from collections import Counter
from pathlib import Path

from swimlatent_wrap import atomic

RATING_NAMES = {"g": "general", "s": "sensitive", "q": "questionable", "e": "explicit"}
BANDS = ((0.5e6, "< 0.5 MP"), (1.0e6, "0.5-1 MP"), (2.0e6, "1-2 MP"), (4.0e6, "2-4 MP"))
THUMB = 200


def resolution_band(width: int | None, height: int | None) -> str:
    pixels = (width or 0) * (height or 0)
    for limit, name in BANDS:
        if pixels < limit:
            return name
    return ">= 4 MP"


def reason_kind(reason: str | None) -> str:
    """A skip/failure reason without its particulars ("too small: 512x512" -> "too small")."""
    text = reason or "?"
    for prefix in ("blacklisted tag", "lacks tag", "too small", "rating", "file type", "network", "md5 mismatch",
                   "older than", "same file as", "file gone", "hidden or banned", "malformed md5"):
        if text.startswith(prefix):
            return prefix
    return text.split(":")[0]


def score_bins(scores: list[int], bins: int = 12) -> list[tuple[str, int]]:
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if low == high:
        return [(str(low), len(scores))]
    width = max(1, -(-(high - low + 1) // bins))
    counts = Counter((s - low) // width for s in scores)
    return [(f"{low + i * width}–{low + (i + 1) * width - 1}", counts.get(i, 0)) for i in range((high - low) // width + 1)]


def summarize(manifest: Path, top: int = 20, notes: list[str] | None = None) -> dict:
    """The report's numbers. The manifest is opened read-only (a read-only dataset can be reported; a
    live one is read as of its last commit, WAL); ``notes`` gets what the reader had to say about it."""
    from swimlatent_wrap.danbooru.manifest import Manifest

    with Manifest(manifest, readonly=True) as store:
        rows = store.all_posts()
        if notes is not None and store.note:
            notes.append(store.note)
    done = [r for r in rows if r["status"] == "downloaded"]
    tags: Counter[str] = Counter()
    artists: Counter[str] = Counter()
    characters: Counter[str] = Counter()
    for r in done:
        tags.update((r["tags_general"] or "").split())
        artists.update((r["tags_artist"] or "").split())
        characters.update((r["tags_character"] or "").split())
    ordered = sorted(done, key=lambda r: (-(r["score"] or 0), -r["id"]))
    return {
        "status": dict(sorted(Counter(r["status"] for r in rows).items())),
        "bytes": sum(r["file_size"] or 0 for r in done),
        "rating": {RATING_NAMES.get(k, str(k)): v for k, v in sorted(Counter(r["rating"] for r in done).items(),
                                                                      key=lambda kv: "gsqe".find(str(kv[0])))},
        "split": dict(Counter(r["split"] for r in done).most_common()),
        "year": dict(sorted(Counter((r["created_at"] or "?")[:4] for r in done).items())),
        "ext": dict(Counter(r["file_ext"] for r in done).most_common()),
        "resolution": {name: n for name, n in ((b, sum(1 for r in done if resolution_band(r["width"], r["height"]) == b))
                                               for b in [b for _, b in BANDS] + [">= 4 MP"]) if n},
        "score": score_bins([r["score"] or 0 for r in done]),
        "score_range": (min((r["score"] or 0 for r in done), default=None), max((r["score"] or 0 for r in done), default=None)),
        "top_tags": tags.most_common(top),
        "top_artists": artists.most_common(top),
        "top_characters": characters.most_common(top),
        "skipped": dict(Counter(reason_kind(r["reason"]) for r in rows if r["status"] == "skipped").most_common()),
        "failed": dict(Counter(reason_kind(r["reason"]) for r in rows if r["status"] == "failed").most_common()),
        "sizes": [(r["width"] or 0, r["height"] or 0) for r in done],
        "images": [(f"{r['md5']}.{r['file_ext']}", r["md5"], r["score"], r["rating"], r["width"], r["height"], r["id"])
                   for r in ordered],
    }


SECTIONS = [("rating", "by rating"), ("split", "by split"), ("year", "by year"), ("ext", "by file type"),
            ("resolution", "by resolution"), ("score", "by score"), ("skipped", "skipped by reason"),
            ("failed", "failed by reason")]
TOPS = [("top_tags", "top tags"), ("top_artists", "top artists"), ("top_characters", "top characters")]


def _items(value) -> list[tuple[str, int]]:
    return list(value.items()) if isinstance(value, dict) else list(value)


def print_table(name: str, summary: dict, console=None, brief: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(highlight=False)
    status = summary["status"]
    low, high = summary["score_range"]
    console.print(f"dataset {name}: " + ", ".join(f"{k} {v}" for k, v in status.items())
                  + f"; {summary['bytes'] / 1e6:.1f} MB downloaded"
                  + (f"; scores {low}..{high}" if low is not None else ""), soft_wrap=True)
    keys = ("rating", "skipped", "failed") if brief else [k for k, _ in SECTIONS]
    tables = [(k, t) for k, t in SECTIONS if k in keys]
    if not brief:
        tables += TOPS
    for key, title in tables:
        items = _items(summary[key])
        if not items:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("tag" if key.startswith("top_") else key)
        table.add_column("images" if key.startswith("top_") else "count", justify="right")
        for k, v in items:
            table.add_row(str(k), str(v))
        console.print(table)


def svg_bars(counts, width: int = 420) -> str:
    """A horizontal bar chart, one bar per (label, count)."""
    items = _items(counts)
    if not items:
        return "<p class=none>none</p>"
    peak = max(v for _, v in items) or 1
    bar_h, label_w = 18, 170
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class=chart width="{width + label_w + 60}" height="{bar_h * len(items) + 4}">']
    for i, (k, v) in enumerate(items):
        y = i * bar_h + 2
        w = max(1, int(width * v / peak)) if v else 0
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="12">{html.escape(str(k))}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h - 4}" fill="#4a7bd0"/>'
                     f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{v}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_scatter(points: list[tuple[int, int]], size: int = 320, limit: int = 4000) -> str:
    """Width against height of every image (a sample of ``limit`` when there are more), with SDXL's 1024 marked."""
    if not points:
        return "<p class=none>none</p>"
    step = max(1, len(points) // limit)
    sample = points[::step]
    top = max(max(w for w, _ in sample), max(h for _, h in sample), 1024) * 1.05
    pad = 40
    scale = (size - pad - 10) / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class=chart width="{size}" height="{size}">',
             f'<line x1="{pad}" y1="{size - pad}" x2="{size - 10}" y2="{size - pad}" stroke="#888"/>',
             f'<line x1="{pad}" y1="10" x2="{pad}" y2="{size - pad}" stroke="#888"/>',
             f'<text x="{size / 2}" y="{size - 8}" font-size="12" text-anchor="middle">width</text>',
             f'<text x="12" y="{size / 2}" font-size="12" transform="rotate(-90 12 {size / 2})" text-anchor="middle">height</text>']
    ref = pad + 1024 * scale
    parts.append(f'<rect x="{pad}" y="{size - pad - 1024 * scale}" width="{ref - pad}" height="{1024 * scale}" '
                 f'fill="none" stroke="#d55" stroke-dasharray="4 3"><title>1024 × 1024</title></rect>')
    for w, h in sample:
        parts.append(f'<circle cx="{pad + w * scale:.1f}" cy="{size - pad - h * scale:.1f}" r="2" fill="#4a7bd0" fill-opacity="0.5"/>')
    parts.append("</svg>")
    return "".join(parts)


def make_thumbs(images: Path, thumbs: Path, entries: list[tuple], limit: int) -> dict[str, str]:
    """Small JPEGs of the first ``limit`` entries (made once); file name -> thumbnail name."""
    from PIL import Image, UnidentifiedImageError

    made: dict[str, str] = {}
    image: Image.Image
    thumbs.mkdir(parents=True, exist_ok=True)
    for file, md5, *_ in entries[:limit]:
        target = thumbs / f"{md5}.jpg"
        if not target.exists():
            try:
                with Image.open(images / file) as image:
                    image.draft("RGB", (THUMB * 2, THUMB * 2))  # JPEGs decode at a reduced scale
                    image.seek(0)
                    image = image.convert("RGB")
                    image.thumbnail((THUMB, THUMB))
            except (OSError, UnidentifiedImageError, ValueError, EOFError):
                continue  # an image that cannot be read gets no thumbnail
            # A thumbnail that cannot be written (a full disk, a read-only folder) stops the page: an
            # OSError for the caller, not one silent failure per image.
            with atomic.atomic_open(target, "wb") as handle:
                image.save(handle, format="JPEG", quality=82)
        made[file] = target.name
    return made


PAGE_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
PAGE_FULL = (errno.ENOSPC, errno.EDQUOT)


def page_problem(error: OSError, dataset_dir: Path, again: str = "`swimlatent report` again") -> str:
    """Why the report page could not be written, and what to do (one line; ``again``: what to run then)."""
    where = error.filename or dataset_dir / "report"
    if error.errno in PAGE_FULL:
        return (f"{where}: {error.strerror}: the report page was not written: free space on the disk holding "
                f"{dataset_dir}, then run {again}")
    if error.errno in PAGE_READ_ONLY:
        return (f"{where}: {error.strerror}: the report page was not written (the dataset folder is read-only); "
                "the tables are the report")
    return f"{where}: {error.strerror or error}: the report page was not written"


def write_report(name: str, summary: dict, dataset_dir: Path, thumbs: int = 240, captions: dict | None = None) -> Path:
    """report/index.html (plots + contact sheet) under ``dataset_dir``; returns its path."""
    out_dir = dataset_dir / "report"
    made = make_thumbs(dataset_dir / "images", out_dir / "thumbs", summary["images"], thumbs)
    status = summary["status"]
    body = [f"<h1>Dataset {html.escape(name)}</h1>",
            "<p>" + ", ".join(f"{html.escape(str(k))}: <b>{v}</b>" for k, v in status.items())
            + f"; {summary['bytes'] / 1e6:.1f} MB downloaded</p>", "<div class=plots>"]
    for key, title in SECTIONS:
        body.append(f"<section><h2>{title}</h2>{svg_bars(summary[key])}</section>")
    body.append(f"<section><h2>width × height</h2>{svg_scatter(summary['sizes'])}</section>")
    for key, title in TOPS:
        body.append(f"<section><h2>{title}</h2>{svg_bars(summary[key])}</section>")
    body.append("</div>")
    if captions is not None:
        from swimlatent_wrap.danbooru.captions import captions_html

        body.append(captions_html(captions, svg_bars))
    shown = [e for e in summary["images"] if e[0] in made]
    body.append(f"<h2>contact sheet: the {len(shown)} highest-scored of {len(summary['images'])} images</h2><div class=grid>")
    for file, md5, score, rating, w, h, post_id in shown:
        src = html.escape(f"../images/{file}")
        body.append(f'<figure><a href="{src}"><img loading=lazy src="thumbs/{html.escape(made[file])}" alt="{html.escape(file)}"></a>'
                    f"<figcaption>#{post_id} · score {score} · {rating} · {w}×{h}</figcaption></figure>")
    body.append("</div>")
    page = ("<!doctype html><meta charset=utf-8><title>" + html.escape(name) + " — dataset report</title><style>"
            "body{font-family:sans-serif;margin:2em}.plots{display:flex;flex-wrap:wrap;gap:1em 3em}"
            ".grid{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0;width:160px}"
            "img{width:160px;height:160px;object-fit:cover}figcaption{font-size:11px}.none{color:#888}</style>"
            + "\n".join(body) + "\n")
    out = out_dir / "index.html"
    atomic.write_text(out, page)
    return out

"""The dataset report: counts by rating, year, file type and resolution, top tags/artists, failures by reason.

`summarize` reads manifest.sqlite; `print_table` draws it in the terminal (rich); `write_html` writes
report/index.html with inline-SVG bars and a thumbnail contact sheet (images linked, not copied).
"""

from __future__ import annotations

import html
import sqlite3
from collections import Counter
from pathlib import Path

from swimlatent_wrap import atomic

RATING_NAMES = {"g": "general", "s": "sensitive", "q": "questionable", "e": "explicit"}


def resolution_band(width: int | None, height: int | None) -> str:
    pixels = (width or 0) * (height or 0)
    for limit, name in ((0.5e6, "< 0.5 MP"), (1.0e6, "0.5-1 MP"), (2.0e6, "1-2 MP"), (4.0e6, "2-4 MP")):
        if pixels < limit:
            return name
    return ">= 4 MP"


def summarize(manifest: Path, top: int = 20) -> dict:
    db = sqlite3.connect(f"file:{manifest}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("SELECT * FROM posts").fetchall()
    finally:
        db.close()
    done = [r for r in rows if r["status"] == "downloaded"]
    tags, artists = Counter(), Counter()
    for r in done:
        tags.update((r["tags_general"] or "").split())
        artists.update((r["tags_artist"] or "").split())
    return {
        "status": dict(Counter(r["status"] for r in rows)),
        "bytes": sum(r["file_size"] or 0 for r in done),
        "rating": dict(sorted(Counter(RATING_NAMES.get(r["rating"], str(r["rating"])) for r in done).items())),
        "year": dict(sorted(Counter((r["created_at"] or "?")[:4] for r in done).items())),
        "ext": dict(Counter(r["file_ext"] for r in done).most_common()),
        "resolution": dict(Counter(resolution_band(r["width"], r["height"]) for r in done).most_common()),
        "split": dict(Counter(r["split"] for r in done).most_common()),
        "top_tags": tags.most_common(top),
        "top_artists": artists.most_common(top),
        "skipped": dict(Counter(_reason_kind(r["reason"]) for r in rows if r["status"] == "skipped").most_common()),
        "failed": dict(Counter(_reason_kind(r["reason"]) for r in rows if r["status"] == "failed").most_common()),
        "images": [(f"{r['md5']}.{r['file_ext']}", r["score"], r["rating"], r["width"], r["height"])
                   for r in sorted(done, key=lambda r: (-(r["score"] or 0), -r["id"]))],
    }


def _reason_kind(reason: str | None) -> str:
    text = reason or "?"
    for prefix in ("blacklisted tag", "too small", "rating", "file type", "network", "md5 mismatch", "older than"):
        if text.startswith(prefix):
            return prefix
    return text.split(":")[0]


SECTIONS = [("rating", "by rating"), ("split", "by split"), ("year", "by year"), ("ext", "by file type"),
            ("resolution", "by resolution"), ("skipped", "skipped by reason"), ("failed", "failed by reason")]


def print_table(name: str, summary: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    status = summary["status"]
    console.print(f"dataset {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(status.items()))
                  + f", {summary['bytes'] / 1e6:.1f} MB downloaded")
    for key, title in SECTIONS:
        if summary[key]:
            table = Table(title=title, title_justify="left")
            table.add_column(key)
            table.add_column("count", justify="right")
            for k, v in summary[key].items():
                table.add_row(str(k), str(v))
            console.print(table)
    for key, title in (("top_tags", "top tags"), ("top_artists", "top artists")):
        if summary[key]:
            table = Table(title=title, title_justify="left")
            table.add_column("tag")
            table.add_column("images", justify="right")
            for k, v in summary[key]:
                table.add_row(k, str(v))
            console.print(table)


def svg_bars(counts: dict | list, width: int = 420) -> str:
    items = list(counts.items()) if isinstance(counts, dict) else list(counts)
    if not items:
        return "<p>none</p>"
    peak = max(v for _, v in items) or 1
    bar_h, label_w = 18, 140
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + label_w + 60}" height="{bar_h * len(items) + 4}">']
    for i, (k, v) in enumerate(items):
        y = i * bar_h + 2
        w = max(1, int(width * v / peak))
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="12">{html.escape(str(k))}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h - 4}" fill="#4a7bd0"/>'
                     f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{v}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_html(name: str, summary: dict, out_dir: Path, images_rel: str = "../images", thumbs: int = 300) -> Path:
    body = [f"<h1>Dataset {html.escape(name)}</h1>",
            "<p>" + ", ".join(f"{html.escape(k)}: {v}" for k, v in sorted(summary["status"].items()))
            + f"; {summary['bytes'] / 1e6:.1f} MB</p>"]
    for key, title in SECTIONS + [("top_tags", "top tags"), ("top_artists", "top artists")]:
        body.append(f"<h2>{title}</h2>{svg_bars(summary[key])}")
    body.append(f"<h2>contact sheet (top {min(thumbs, len(summary['images']))} by score)</h2><div class=grid>")
    for file, score, rating, w, h in summary["images"][:thumbs]:
        src = html.escape(f"{images_rel}/{file}")
        body.append(f'<figure><a href="{src}"><img loading=lazy src="{src}" alt="{html.escape(file)}"></a>'
                    f"<figcaption>{score} · {rating} · {w}×{h}</figcaption></figure>")
    body.append("</div>")
    page = ("<!doctype html><meta charset=utf-8><title>" + html.escape(name) + "</title><style>"
            "body{font-family:sans-serif;margin:2em}.grid{display:flex;flex-wrap:wrap;gap:6px}"
            "figure{margin:0;width:150px}img{width:150px;height:150px;object-fit:cover}"
            "figcaption{font-size:11px}</style>" + "\n".join(body))
    out = out_dir / "index.html"
    atomic.write_text(out, page)
    return out

"""Curation: propose the subset of a style set that a LoRA trains on (seed: "the dataset for FT is
further screened to about 100 images"), and a contact sheet to review and change it.

The proposal ranks the source dataset's images by Danbooru score (from its manifest, when it was
collected), then by pixel count, and drops near-duplicates: images whose 8×8 average hash is within
a few bits of an image already taken (variants, crops, re-uploads). The selection itself is a
plain file, one image file name per line, that the LoRA recipe names and the user may edit.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.images import images_in

NEAR_DUPLICATE_BITS = 6  # of 64: average hashes this close are taken as the same picture
THUMB = 256


@dataclass(frozen=True)
class Candidate:
    name: str
    score: int
    width: int
    height: int
    ahash: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def average_hash(image) -> int:
    """64-bit average hash: 8×8 grayscale, one bit per pixel above the mean."""
    small = image.convert("L").resize((8, 8))
    values = list(small.getdata())
    mean = sum(values) / len(values)
    bits = 0
    for value in values:
        bits = (bits << 1) | (value > mean)
    return bits


def _scores(manifest: Path) -> dict[str, int]:
    """Image name -> Danbooru score from the source dataset's manifest, read-only; {} when it has none
    (a folder of images: ranked by size alone). A manifest that cannot be read is a UserError saying why."""
    from swimlatent_wrap.danbooru.manifest import Manifest

    if not manifest.is_file():
        return {}
    with Manifest(manifest, readonly=True, empty_ok=True) as store:
        return store.downloaded_scores()


def _candidate(path: Path, thumbs: Path, score: int) -> Candidate | None:
    """One image: size, perceptual hash, and its thumbnail (made once); None when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    from swimlatent_wrap.atomic import atomic_open

    image: Image.Image
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.draft("RGB", (THUMB * 2, THUMB * 2))  # JPEGs decode at a reduced scale
            image = image.convert("RGB")
            digest = average_hash(image)
            thumb = thumbs / (path.stem + ".jpg")
            if not thumb.exists():
                image.thumbnail((THUMB, THUMB))
                with atomic_open(thumb, "wb") as handle:
                    image.save(handle, format="JPEG", quality=80)
    except (OSError, UnidentifiedImageError, ValueError, EOFError):
        return None
    return Candidate(path.name, score, width, height, digest)


def candidates(images: Path, manifest: Path, thumbs: Path) -> tuple[list[Candidate], list[str]]:
    """Every readable image of the folder (with a thumbnail written for the sheet) and the unreadable ones.
    Decoding runs on a few threads (Pillow releases the GIL while it decodes)."""
    import concurrent.futures as cf
    import os

    scores = _scores(manifest)
    thumbs.mkdir(parents=True, exist_ok=True)
    paths = images_in(images)
    with cf.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda p: _candidate(p, thumbs, scores.get(p.name, 0)), paths))
    found = [c for c in results if c is not None]
    unreadable = [p.name for p, c in zip(paths, results) if c is None]
    return found, unreadable


def propose(found: list[Candidate], count: int, near_bits: int = NEAR_DUPLICATE_BITS) -> tuple[list[Candidate], dict[str, str]]:
    """The top ``count`` by score then size, skipping near-duplicates; and why others were left out."""
    ranked = sorted(found, key=lambda c: (-c.score, -c.pixels, c.name))
    chosen: list[Candidate] = []
    left_out: dict[str, str] = {}
    for candidate in ranked:
        twin = None
        if near_bits > 0:
            twin = next((c for c in chosen if bin(c.ahash ^ candidate.ahash).count("1") <= near_bits), None)
        if twin is not None:
            left_out[candidate.name] = f"near-duplicate of {twin.name}"
        elif len(chosen) < count:
            chosen.append(candidate)
        else:
            left_out[candidate.name] = "ranked below the count"
    return chosen, left_out


def selection_text(chosen: list[Candidate]) -> str:
    return ("# Images the LoRA trains on: one file name per line (from `swimlatent curate`; edit freely).\n"
            + "".join(f"{c.name}\n" for c in chosen))


def contact_sheet(found: list[Candidate], selected: set[str], left_out: dict[str, str], *, title: str,
                  selection_file: Path, thumbs_href: str) -> str:
    """A static page: every candidate with a checkbox; the checked names, live, as the selection file."""
    cards = []
    for c in sorted(found, key=lambda c: (-c.score, -c.pixels, c.name)):
        checked = " checked" if c.name in selected else ""
        note = html.escape(left_out.get(c.name, ""))
        stem = Path(c.name).stem
        cards.append(f'<label class=card><img src="{thumbs_href}/{html.escape(stem)}.jpg" loading=lazy alt="">'
                     f'<span><input type=checkbox name=pick value="{html.escape(c.name)}"{checked}> '
                     f'score {c.score} · {c.width}×{c.height}</span><small>{note}</small></label>')
    script = """
const boxes = [...document.querySelectorAll('input[name=pick]')];
const out = document.getElementById('selection'), count = document.getElementById('count');
function update() {
  const names = boxes.filter(b => b.checked).map(b => b.value);
  out.value = HEADER + names.map(n => n + '\\n').join('');
  count.textContent = names.length;
}
boxes.forEach(b => b.addEventListener('change', update));
document.getElementById('save').addEventListener('click', () => {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([out.value], {type: 'text/plain'}));
  link.download = FILE_NAME; link.click();
});
update();
"""
    header = "# Images the LoRA trains on: one file name per line (from `swimlatent curate`; edit freely).\n"
    script = script.replace("HEADER", json.dumps(header)).replace("FILE_NAME", json.dumps(selection_file.name))
    return ("<!doctype html><meta charset=utf-8><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif}.grid{display:flex;flex-wrap:wrap;gap:8px}.card{display:flex;flex-direction:column;"
            "width:260px;border:1px solid #ccc;padding:4px}.card img{max-width:256px;max-height:256px}small{color:#a00}"
            "textarea{width:100%;height:12em}</style>"
            f"<h1>{html.escape(title)}</h1><p><b id=count>0</b> selected. Tick or untick images, then "
            f"<button id=save>save {html.escape(selection_file.name)}</button> and put it at "
            f"<code>{html.escape(str(selection_file))}</code> (or copy the text below into it).</p>"
            "<textarea id=selection readonly></textarea><div class=grid>" + "".join(cards) + "</div>"
            f"<script>{script}</script>\n")


def require_source(images: Path, name: str) -> None:
    if not images_in(images):
        raise UserError(f"no images in {images}: collect dataset {name!r} first (swimlatent collect on the recipe that names it)")

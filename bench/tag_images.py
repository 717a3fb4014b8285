"""Danbooru-sized test JPEGs for the tagger benchmark: 2000–4000 px on the long side, common
aspect ratios, illustration-like content (flat colours, outlines, gradients) plus a little grain
so files are a realistic 1–4 MB. Deterministic for a seed; cached, since drawing takes a while."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ASPECTS = (2 / 3, 3 / 4, 1.0, 4 / 3, 16 / 9, 9 / 16, 3 / 2, 0.7)


def _picture(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    top, bottom = rng.integers(120, 256, 3), rng.integers(60, 256, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    background = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)
    image = Image.fromarray(np.broadcast_to(background, (height, width, 3)).copy())
    draw = ImageDraw.Draw(image)
    for _ in range(35):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [x, y, x + int(rng.integers(width // 20, width // 2)), y + int(rng.integers(height // 20, height // 2))]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour, outline=(25, 20, 20), width=int(rng.integers(3, 12)))
        else:
            draw.rectangle(box, fill=colour, outline=(25, 20, 20), width=int(rng.integers(3, 12)))
    for _ in range(150):
        points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(2)]
        draw.line(points, fill=(30, 25, 25), width=int(rng.integers(2, 8)))
    grain = rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(image, np.int16) + grain, 0, 255).astype(np.uint8))


def danbooru_like_jpegs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` JPEGs in ``folder`` (made once, then reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])  # one stream per image: any subset can be redrawn alone
        long_side = int(rng.integers(2000, 4001))
        aspect = float(rng.choice(ASPECTS))
        width, height = (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
        path = folder / f"{seed:02d}{index:04d}.jpg"
        if not path.exists():
            temp = path.with_name(f".{path.name}.part")
            _picture(width, height, rng).save(temp, "JPEG", quality=92)
            temp.replace(path)
        paths.append(path)
    return paths

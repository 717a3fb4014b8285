"""Independent references the tagger is checked against: the features the tiny model should see
for an image (by the WD14 convention, from the full-resolution pixels), and the caption
convention of DESIGN.md written out the plain way."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.tagger import tiny_tagger


def composited(image: Image.Image) -> np.ndarray:
    """RGB float64 pixels, transparency blended onto white."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:] / 255.0
        return rgba[..., :3] * alpha + 255.0 * (1 - alpha)
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def _first_half(side: int) -> np.ndarray:
    """Per row (or column) of a side-long square: how much of it lies in the first half."""
    return np.clip(side / 2 - np.arange(side), 0, 1)


def features(image: Image.Image) -> np.ndarray:
    """The tiny model's 12 features: mean B, G, R (0..1) of each quadrant of the image padded to a
    centred white square. Resizing by area averaging keeps each quadrant's mean, so no resize here."""
    pixels = composited(image)
    height, width = pixels.shape[:2]
    side = max(height, width)
    canvas = np.full((side, side, 3), 255.0)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top:top + height, left:left + width] = pixels
    rows = cols = _first_half(side)
    out = np.zeros(12)
    quarter = (side / 2) ** 2
    for q, (wy, wx) in enumerate([(rows, cols), (rows, 1 - cols), (1 - rows, cols), (1 - rows, 1 - cols)]):
        mean_rgb = np.einsum("y,x,yxc->c", wy, wx, canvas) / quarter
        for c, name in enumerate(tiny_tagger.CHANNELS):
            out[c * 4 + q] = mean_rgb["RGB".index(name)] / 255.0
    return out


def written(tag: str) -> str:
    return tag if len(tag) <= 3 else tag.replace("_", " ")


def caption(probs, prefix=(), general=0.35, character=0.85, blacklist=(), rating=False) -> str:
    names, categories = tiny_tagger.NAMES, tiny_tagger.CATEGORIES
    out = list(prefix)
    if rating:
        ratings = [i for i, c in enumerate(categories) if c == 9]
        out.append(written(names[max(ratings, key=lambda i: probs[i])]))
    for category, threshold in ((4, character), (0, general)):
        chosen = [(probs[i], i) for i, c in enumerate(categories) if c == category and probs[i] >= threshold]
        chosen.sort(key=lambda pair: -pair[0])
        out += [written(names[i]) for _, i in chosen]
    banned = {written(b) for b in blacklist}
    result = []
    for tag in out:
        if tag not in result and (tag in prefix or tag not in banned):
            result.append(tag)
    return ", ".join(result)

"""One image file → the tagger's input: float32 [size, size, 3], BGR, 0..255.

The WD14 convention, done the way sd-scripts' ``finetune/tag_images_by_wd14_tagger.py`` does it
(reference/sd-scripts-facts.md §8), so captions match the tool people compare us with:

1. transparency (an alpha channel or a transparent palette entry) composited onto white;
2. padded to a centred square with white (left/top padding = half, rounded down);
3. resized to the model's size: area averaging when shrinking (what sd-scripts gets from
   cv2.INTER_AREA, reimplemented here exactly, rounding included, so we need no OpenCV),
   Pillow's LANCZOS when enlarging (what sd-scripts uses), nothing when it already fits;
4. RGB → BGR, float32, no normalisation.

Large JPEGs (Danbooru originals are 2000–4000 px) are decoded at 1/2, 1/4 or 1/8 scale with
Pillow's draft mode (libjpeg scales in the DCT), never below twice the model's size. The area
average is then taken over the full-resolution geometry, each decoded pixel standing for an r×r
block of the original: padding and pixel edges land where they would without draft mode, so
the only difference left is libjpeg's block averaging (bench/bench_tag.py measures it in grey
levels). No EXIF rotation, as in sd-scripts.

``resize = "bicubic"`` ([captions]) follows the model authors' reference instead (SmilingWolf's
wd-tagger space, and dghs-imgutils): the same compositing and centred white square, then
Pillow's BICUBIC resize of the square to the model's size (only when it is not that size
already). That path decodes every image at full resolution (no draft mode), so its pixels are
the reference's exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WHITE = 255
# Decode JPEGs at 1/2, 1/4 or 1/8 scale, but keep the long side ≥ DRAFT_MARGIN × the model size.
DRAFT_MARGIN = 2
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# [captions] resize: how the padded square is brought to the model's size.
SD_SCRIPTS = "sd-scripts"  # area averaging when shrinking, LANCZOS when enlarging (the default)
BICUBIC = "bicubic"  # Pillow BICUBIC, as the authors' reference code
RESIZES = (SD_SCRIPTS, BICUBIC)


def draft_reduction(width: int, height: int, size: int) -> int:
    """The JPEG scale-down factor (1, 2, 4 or 8) for an image of this size."""
    for reduction in (8, 4, 2):
        if -(-max(width, height) // reduction) >= DRAFT_MARGIN * size:
            return reduction
    return 1


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image and the full-resolution size it stands for (larger when decoded in draft mode)."""

    image: Any  # PIL.Image.Image, RGB
    full_size: tuple[int, int]  # (width, height) of the original
    reduction: int  # each decoded pixel covers reduction × reduction original pixels


def open_rgb(path: Path, size: int, draft: bool = True) -> DecodedImage:
    """Decode ``path`` to RGB, transparency on white; large JPEGs at reduced scale unless not ``draft``."""
    from PIL import Image

    with Image.open(path) as image:
        full_size = image.size
        reduction = 1
        if draft and image.format == "JPEG":
            wanted = draft_reduction(image.width, image.height, size)
            if wanted > 1:
                # Pillow takes the scale as min(width // asked width, height // asked height): ask
                # for the long side only, so a thin image's short side cannot push it past 1/wanted.
                wide = image.width >= image.height
                asked = (max(1, image.width // wanted), 1) if wide else (1, max(1, image.height // wanted))
                drafted = image.draft(image.mode, asked)
                if drafted is not None:
                    reduction = round(full_size[0] / drafted[1][2])  # box = (0, 0, width / scale, height / scale)
        image.load()
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (WHITE, WHITE, WHITE))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        else:
            rgb = image.convert("RGB") if image.mode != "RGB" else image.copy()
    return DecodedImage(rgb, full_size, reduction)


def model_input(rgb, size: int, full_size: tuple[int, int] | None = None, reduction: int = 1):
    """An RGB image → float32 [size, size, 3] BGR, padded to a white square and resized.
    ``full_size``/``reduction``: the image was decoded at 1/reduction of this original size."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(rgb, dtype=np.uint8)
    height, width = pixels.shape[:2]
    full_width, full_height = full_size or (width, height)
    side = max(full_width, full_height)
    top, left = (side - full_height) // 2, (side - full_width) // 2
    if side > size:
        geometry = (side, reduction, size)
        square = area_resize(pixels, (top, full_height, *geometry), (left, full_width, *geometry))
        if reduction == 1 and side == 2 * size:
            # OpenCV's integer-ratio fast path for 2×2 blocks rounds halves up; elsewhere it rounds to even.
            square = np.floor(square + 0.5)
        else:
            square = np.rint(square)
        square = np.clip(square, 0, WHITE, out=square)
    else:
        square = np.full((side, side, 3), WHITE, np.uint8)
        square[top:top + height, left:left + width] = pixels
        if side < size:
            square = np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(square[:, :, ::-1], dtype=np.float32)


def bicubic_input(rgb, size: int):
    """An RGB image → float32 [size, size, 3] BGR: padded to a centred white square, then resized
    with Pillow's BICUBIC when the square is not ``size`` already (the authors' reference)."""
    import numpy as np
    from PIL import Image

    width, height = rgb.size
    side = max(width, height)
    square = Image.new("RGB", (side, side), (WHITE, WHITE, WHITE))
    square.paste(rgb, ((side - width) // 2, (side - height) // 2))
    if side != size:
        square = square.resize((size, size), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(square, dtype=np.float32)[:, :, ::-1])


def preprocess_file(path: Path, size: int, resize: str = SD_SCRIPTS):
    """``path`` → the model's input for it, resized the ``resize`` way (SD_SCRIPTS or BICUBIC).
    Raises whatever Pillow raises for an unreadable file."""
    if resize == BICUBIC:
        return bicubic_input(open_rgb(path, size, draft=False).image, size)
    if resize != SD_SCRIPTS:
        raise ValueError(f"resize must be one of {', '.join(RESIZES)}, not {resize!r}")
    decoded = open_rgb(path, size)
    return model_input(decoded.image, size, decoded.full_size, decoded.reduction)


@functools.lru_cache(maxsize=256)
def _area_weights(offset: int, length: int, side: int, reduction: int, size: int):
    """Area-averaging weights along one axis (what cv2.INTER_AREA computes), in full-resolution
    pixels: the image spans [offset, offset + length) of a white strip [0, side); decoded pixel k
    covers [offset + k·r, offset + (k+1)·r), cut at the image's end; output pixel i covers
    [i·side/size, (i+1)·side/size). Returns, per output pixel, the decoded pixels it overlaps
    (one column per position in its span), their shares of its area, and the share that is white."""
    import numpy as np

    scale = side / size
    low = np.arange(size)[:, None] * scale
    first = np.floor((low[:, 0] - offset) / reduction).astype(np.intp)
    span = int(np.ceil(scale / reduction)) + 2
    index = first[:, None] + np.arange(span)[None, :]
    pixel_low = offset + index * reduction
    pixel_high = np.minimum(pixel_low + reduction, offset + length)
    weight = np.clip(np.minimum(pixel_high, low + scale) - np.maximum(pixel_low, low), 0.0, None) / scale
    decoded = -(-length // reduction)
    weight[(index < 0) | (index >= decoded)] = 0.0
    used = weight.any(axis=0)
    white = np.clip(1.0 - weight.sum(axis=1), 0.0, None)
    return (np.clip(index[:, used], 0, decoded - 1), weight[:, used].astype(np.float32),
            white.astype(np.float32))


def _area_rows(pixels, geometry):
    """Area-average the rows of a 2-D array (rows × values) down to ``size`` rows. One gather
    (np.take: much faster here than np.add.reduceat or np.cumsum along rows) and one
    multiply-add per position in the span, then the white padding's share."""
    import numpy as np

    index, weight, white = _area_weights(*geometry)
    out = None
    for column in range(index.shape[1]):
        part = np.take(pixels, index[:, column], axis=0).astype(np.float32, copy=False)
        part *= weight[:, column][:, None]
        out = part if out is None else np.add(out, part, out=out)
    out += (WHITE * white)[:, None]
    return out


def area_resize(pixels, rows, columns):
    """Area-average ``pixels`` (uint8 [h, w, 3]) on its white square down to [size, size, 3] float32
    (not yet rounded), without building the square. ``rows``/``columns``: (offset, length, side,
    reduction, size) in full-resolution pixels. Both passes run over the rows of 2-D arrays, so
    numpy's inner loops are long."""
    import numpy as np

    height, width = pixels.shape[:2]
    size = rows[-1]
    shrunk = _area_rows(pixels.reshape(height, width * 3), rows)  # [size, w·3]
    turned = np.ascontiguousarray(shrunk.reshape(size, width, 3).transpose(1, 0, 2)).reshape(width, size * 3)
    return _area_rows(turned, columns).reshape(size, size, 3).transpose(1, 0, 2)

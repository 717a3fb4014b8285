"""The model authors' preprocessing, written out as their reference code does it: SmilingWolf's
wd-tagger space (``Predictor.prepare_image`` in its app.py, which gets every image as RGBA) and
dghs-imgutils' ``imgutils/tagging/wd14.py`` (reference/ecosystem.md, §B and §C):

1. composite on a white RGBA canvas (``alpha_composite``), then RGB;
2. paste into a centred white square (left/top padding = half, rounded down);
3. Pillow BICUBIC resize to the model's size, only when the square is not that size already;
4. float32 0..255, RGB → BGR, a batch dimension.

Independent of swimlatent_wrap: the `resize = "bicubic"` path is compared with it pixel for pixel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def prepare_image(image: Image.Image, target_size: int) -> np.ndarray:
    canvas = Image.new("RGBA", image.size, (255, 255, 255))
    canvas.alpha_composite(image.convert("RGBA"))
    image = canvas.convert("RGB")

    max_dim = max(image.size)
    pad_left = (max_dim - image.size[0]) // 2
    pad_top = (max_dim - image.size[1]) // 2
    padded = Image.new("RGB", (max_dim, max_dim), (255, 255, 255))
    padded.paste(image, (pad_left, pad_top))

    if max_dim != target_size:
        padded = padded.resize((target_size, target_size), Image.BICUBIC)

    array = np.asarray(padded, dtype=np.float32)[:, :, ::-1]
    return np.expand_dims(array, axis=0)

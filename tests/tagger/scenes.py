"""Test images: every kind of file the tagger meets (modes, formats, shapes), plus broken ones."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def _halves(size, first, second, vertical=False) -> Image.Image:
    width, height = size
    pixels = np.empty((height, width, 3), np.uint8)
    if vertical:
        pixels[: height // 2], pixels[height // 2:] = first, second
    else:
        pixels[:, : width // 2], pixels[:, width // 2:] = first, second
    return Image.fromarray(pixels)


def _alpha() -> Image.Image:
    pixels = np.zeros((800, 800, 4), np.uint8)  # left half: transparent black, must read as white
    pixels[:, 400:] = (30, 60, 220, 255)
    pixels[600:, 400:, 3] = 128  # a half-transparent corner
    return Image.fromarray(pixels, "RGBA")


def _palette() -> Image.Image:
    image = Image.new("P", (500, 700), 0)
    image.putpalette([0, 0, 0, 240, 200, 30] + [0, 0, 0] * 254)
    image.paste(1, (0, 350, 500, 700))
    image.info["transparency"] = 0  # the top half is transparent
    return image


# name → (image, Pillow save options). Sizes cover: shrinking, enlarging (tiny), exact fit,
# very wide and very tall, and Danbooru-sized JPEGs (decoded in draft mode).
SCENES = {
    "red.png": (Image.new("RGB", (600, 600), (200, 40, 40)), {}),
    "wide_two_tone.png": (_halves((1600, 400), (230, 20, 20), (20, 20, 230)), {}),
    "tall_green_top.webp": (_halves((300, 1200), (20, 220, 20), (255, 255, 255), vertical=True), {"lossless": True}),
    "alpha.png": (_alpha(), {}),
    "palette.png": (_palette(), {"transparency": 0}),
    "gray.png": (Image.new("L", (640, 480), 90), {}),
    "photo.jpg": (_halves((3000, 2000), (40, 90, 200), (250, 250, 250)), {"quality": 95}),
    "tiny.bmp": (Image.new("RGB", (64, 48), (30, 200, 60)), {}),
    "exact.png": (Image.new("RGB", (448, 448), (250, 250, 250)), {}),
    "banner.png": (Image.new("RGB", (4000, 100), (250, 10, 10)), {}),
    "pole.jpg": (Image.new("RGB", (120, 3600), (10, 10, 240)), {"quality": 95}),
    # Just either side of the thresholds: hatsune_miku at 0.868 / 0.836 (character, 0.85),
    # long_hair at 0.371 / 0.338 (general, 0.35).
    "miku_above.png": (Image.new("RGB", (500, 500), (77, 77, 107)), {}),
    "miku_below.png": (Image.new("RGB", (500, 500), (77, 77, 103)), {}),
    "hair_above.png": (Image.new("RGB", (500, 500), (130, 120, 120)), {}),
    "hair_below.png": (Image.new("RGB", (500, 500), (127, 120, 120)), {}),
}


def write_scenes(folder: Path, names=None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or SCENES:
        image, options = SCENES[name]
        path = folder / name
        image.save(path, **options)
        paths.append(path)
    return paths


def write_broken(folder: Path) -> list[Path]:
    """A truncated JPEG, random bytes named .png, an empty .webp."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (10, 120, 200)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    paths = [folder / "truncated.jpg", folder / "garbage.png", folder / "empty.webp"]
    paths[0].write_bytes(data[: len(data) // 2])
    paths[1].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    paths[2].write_bytes(b"")
    return paths

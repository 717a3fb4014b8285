"""Preprocessing: the WD14 convention as sd-scripts does it (pad white, area-shrink / LANCZOS-enlarge, BGR)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from swimlatent_wrap.tagger.preprocess import area_resize, draft_reduction, model_input, open_rgb, preprocess_file


def drawing(width: int, height: int, seed: int = 0) -> Image.Image:
    """Flat colours, hard edges and lines, like an illustration (and unlike noise, like JPEGs expect)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), (235, 225, 210))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [x, y, x + int(rng.integers(10, width // 2 + 11)), y + int(rng.integers(10, height // 2 + 11))]
        draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), outline=(20, 20, 20), width=3)
    for _ in range(60):
        points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(2)]
        draw.line(points, fill=(30, 30, 30), width=int(rng.integers(1, 5)))
    return image


def exact_area(square: np.ndarray, size: int) -> np.ndarray:
    """Area averaging written from its definition: each output pixel is the mean of the input
    area it covers, partial pixels weighted by their covered fraction (float64, dense)."""
    side = square.shape[0]
    scale = side / size
    weights = np.zeros((size, side))
    for i in range(size):
        low, high = i * scale, (i + 1) * scale
        for k in range(math.floor(low), min(math.ceil(high), side)):
            weights[i, k] = (min(k + 1, high) - max(k, low)) / scale
    rows = (weights @ square.reshape(side, -1).astype(np.float64)).reshape(size, side, 3)  # [y', x, c]
    columns = weights @ rows.transpose(1, 0, 2).reshape(side, -1)  # [x', y'·c]
    return columns.reshape(size, size, 3).transpose(1, 0, 2)


@pytest.mark.parametrize("side", [449, 500, 897, 1000, 1347])
def test_area_shrinking_is_exact_area_averaging(side):
    square = np.asarray(drawing(side, side, seed=side))
    ours = model_input(Image.fromarray(square), 448)[:, :, ::-1]
    reference = np.rint(exact_area(square, 448))
    differ = ours != reference
    assert np.abs(ours - reference).max() <= 1
    assert differ.mean() < 1e-4  # only float rounding right at .5


def test_halving_rounds_halves_up_as_opencvs_fast_path_does():
    square = np.asarray(drawing(896, 896, seed=3))
    ours = model_input(Image.fromarray(square), 448)[:, :, ::-1]
    blocks = square.reshape(448, 2, 448, 2, 3).astype(np.int64).sum(axis=(1, 3))
    assert np.array_equal(ours, (blocks + 2) // 4)


def test_padding_is_applied_without_building_the_square_but_to_the_same_effect():
    image = np.asarray(drawing(1200, 530, seed=5))
    side, top = 1200, (1200 - 530) // 2
    square = np.full((side, side, 3), 255, np.uint8)
    square[top:top + 530] = image
    padded = np.rint(area_resize(image, (top, 530, side, 1, 448), (0, 1200, side, 1, 448)))
    direct = np.rint(area_resize(square, (0, side, side, 1, 448), (0, side, side, 1, 448)))
    assert np.abs(padded - direct).max() <= 1 and (padded != direct).mean() < 1e-4


def test_output_is_bgr_float32_of_the_models_size():
    out = model_input(Image.new("RGB", (900, 600), (200, 40, 10)), 448)
    assert out.shape == (448, 448, 3) and out.dtype == np.float32 and out.flags.c_contiguous
    assert out[224, 224].tolist() == [10.0, 40.0, 200.0]  # B, G, R
    assert out[2, 224].tolist() == [255.0, 255.0, 255.0]  # white padding above a wide image
    assert out[224, 2].tolist() == [10.0, 40.0, 200.0]  # no padding at the sides


def test_small_images_are_enlarged_with_lanczos_and_exact_fits_are_untouched():
    small = drawing(300, 200, seed=7)
    square = Image.new("RGB", (300, 300), (255, 255, 255))
    square.paste(small, (0, 50))
    expected = np.asarray(square.resize((448, 448), Image.LANCZOS))[:, :, ::-1]
    assert np.array_equal(model_input(small, 448), expected.astype(np.float32))
    fit = drawing(448, 448, seed=8)
    assert np.array_equal(model_input(fit, 448), np.asarray(fit)[:, :, ::-1].astype(np.float32))


def test_transparency_is_composited_on_white(tmp_path):
    pixels = np.zeros((64, 64, 4), np.uint8)
    pixels[:, 32:] = (0, 0, 200, 255)
    pixels[48:, 32:, 3] = 128
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    rgb = np.asarray(open_rgb(tmp_path / "a.png", 448).image)
    assert rgb[10, 10].tolist() == [255, 255, 255]  # fully transparent black reads as white
    assert rgb[10, 40].tolist() == [0, 0, 200]
    assert np.abs(rgb[60, 40].astype(int) - [127, 127, 227]).max() <= 1  # half over white
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    palette.paste(1, (0, 10, 20, 20))
    palette.save(tmp_path / "p.png", transparency=0)
    rgb = np.asarray(open_rgb(tmp_path / "p.png", 448).image)
    assert rgb[2, 2].tolist() == [255, 255, 255] and rgb[15, 2].tolist() == [10, 200, 10]
    Image.new("LA", (8, 8), (0, 0)).save(tmp_path / "la.png")
    assert np.asarray(open_rgb(tmp_path / "la.png", 448).image)[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("size,expected", [((4000, 3000), 4), ((3000, 2000), 2), ((1790, 1000), 1), ((1791, 900), 2),
                                           ((8000, 40), 8), ((448, 448), 1)])
def test_jpeg_draft_scale_keeps_twice_the_models_size(size, expected):
    assert draft_reduction(*size, 448) == expected


@pytest.mark.parametrize("size", [(4000, 3000), (3000, 2000), (3703, 2083), (8000, 40), (60, 5000)])
def test_large_jpegs_decode_at_reduced_scale_on_the_full_size_geometry(tmp_path, size):
    path = tmp_path / "big.jpg"
    drawing(*size).save(path, quality=92)
    decoded = open_rgb(path, 448)
    reduction = draft_reduction(*size, 448)
    assert decoded.reduction == reduction and decoded.full_size == size
    assert decoded.image.size == tuple(-(-s // reduction) for s in size)
    assert max(decoded.image.size) >= 2 * 448
    with Image.open(path) as full:
        full_res = model_input(full.convert("RGB"), 448)
    difference = np.abs(preprocess_file(path, 448) - full_res)
    # What is left is libjpeg's DCT-domain averaging: well under a grey level on average.
    assert difference.mean() < 0.75, difference.mean()


def test_draft_geometry_equals_block_averaging_at_full_size():
    # A decoded pixel standing for an r×r block must land exactly where that block would:
    # average a full-size image in 4×4 blocks, pass it as a 1/4 decode, compare with the full one.
    full = np.asarray(drawing(3703, 2083, seed=9))
    padded = np.pad(full, ((0, 1), (0, 1), (0, 0)), mode="edge")  # 3704 × 2084: whole blocks
    blocks = padded.reshape(521, 4, 926, 4, 3).astype(np.float64).mean(axis=(1, 3))
    drafted = np.rint(blocks).astype(np.uint8)
    ours = model_input(Image.fromarray(drafted), 448, full_size=(3703, 2083), reduction=4)
    reference = model_input(Image.fromarray(full), 448)
    # Blocks cut by output pixel edges are split as if uniform, so sharp edges differ a little
    # (~0.45 grey levels on average); placing the 1/4 image as an image of its own, misaligned by
    # up to half a block, gives ~1.5–1.9.
    assert np.abs(ours - reference).mean() < 0.7


def test_grayscale_and_cmyk_become_rgb(tmp_path):
    Image.new("L", (100, 50), 77).save(tmp_path / "g.png")
    Image.new("CMYK", (100, 50), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    assert preprocess_file(tmp_path / "g.png", 448)[224, 224].tolist() == [77.0, 77.0, 77.0]
    b, g, r = preprocess_file(tmp_path / "c.jpg", 448)[224, 224].tolist()
    assert r > 200 and g < 60 and b < 60


def test_model_input_shrinks_by_area_averaging_of_the_padded_square():
    image = drawing(700, 530, seed=11)
    square = np.full((700, 700, 3), 255, np.uint8)
    square[85:615] = np.asarray(image)
    expected = np.rint(exact_area(square, 448))[:, :, ::-1]
    ours = model_input(image, 448)
    assert np.abs(ours - expected).max() <= 1 and (ours != expected).mean() < 1e-4

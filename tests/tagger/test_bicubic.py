"""[captions] resize = "bicubic": the model authors' preprocessing (tests/tagger/space_preprocess.py),
pixel for pixel; the default stays sd-scripts' (test_preprocess.py, test_contract_wd14.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from swimlatent_wrap.tagger.decode import decode_ahead
from swimlatent_wrap.tagger.preprocess import BICUBIC, SD_SCRIPTS, preprocess_file
from tests.tagger import scenes
from tests.tagger.space_preprocess import prepare_image
from tests.tagger.test_preprocess import drawing


def _rgba(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.asarray(drawing(width, height, seed=seed))
    alpha = np.random.default_rng(seed).integers(0, 256, (height, width, 1), dtype=np.uint8)
    return Image.fromarray(np.concatenate([pixels, alpha], axis=2), "RGBA")


IMAGES = {
    "shrink_wide.png": lambda: drawing(1000, 530, seed=1),
    "shrink_tall.png": lambda: drawing(431, 1347, seed=2),  # odd padding: left gets the smaller half
    "enlarge.png": lambda: drawing(300, 201, seed=3),
    "exact.png": lambda: drawing(448, 448, seed=4),
    "exact_side.png": lambda: drawing(448, 300, seed=5),  # padded to 448, no resize
    "alpha.png": lambda: _rgba(700, 530, seed=6),
    "big.jpg": lambda: drawing(3703, 2083, seed=7),  # would be draft-decoded on the sd-scripts path
    "gray.png": lambda: drawing(640, 480, seed=8).convert("L"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bicubic")
    for name, make in IMAGES.items():
        make().save(folder / name, **({"quality": 92} if name.endswith(".jpg") else {}))
    scenes.write_scenes(folder / "scenes")
    return folder


def _reference(path, size=448):
    with Image.open(path) as image:
        return prepare_image(image, size)[0]


@pytest.mark.parametrize("name", list(IMAGES))
def test_bicubic_is_the_authors_preprocessing_pixel_for_pixel(files, name):
    ours = preprocess_file(files / name, 448, BICUBIC)
    reference = _reference(files / name)
    assert ours.shape == (448, 448, 3) and ours.dtype == np.float32 and ours.flags.c_contiguous
    assert np.array_equal(ours, reference)


@pytest.mark.parametrize("name", list(scenes.SCENES))
def test_every_tagger_scene_matches_the_reference_too(files, name):
    # Palette transparency, LA, webp, bmp, CMYK-free JPEGs, banners: the scenes the tagger tests use.
    path = files / "scenes" / name
    assert np.array_equal(preprocess_file(path, 448, BICUBIC), _reference(path))


def test_the_default_is_still_sd_scripts_and_differs_from_bicubic(files):
    path = files / "shrink_wide.png"
    default = preprocess_file(path, 448)
    assert np.array_equal(default, preprocess_file(path, 448, SD_SCRIPTS))
    assert not np.array_equal(default, preprocess_file(path, 448, BICUBIC))
    with pytest.raises(ValueError, match="resize must be one of"):
        preprocess_file(path, 448, "nearest")


def test_the_decode_threads_use_the_resize_asked_for(files):
    paths = [files / name for name in IMAGES]
    decoded = list(decode_ahead(paths, 448, workers=2, ahead=3, resize=BICUBIC))
    assert [item.path for item in decoded] == paths
    for item in decoded:
        assert item.error is None and np.array_equal(item.pixels, _reference(item.path))

"""Against the real Danbooru: opt-in only (SWIMLATENT_LIVE=1), marker `live`, never in the default tier.

    SWIMLATENT_LIVE=1 .venv/bin/python -m pytest -m live tests/danbooru/test_live.py
"""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.danbooru.conftest import write_recipe
from tests.helpers import run_cli

pytestmark = pytest.mark.live


def test_collect_four_images_from_the_real_site(tmp_path):
    if os.environ.get("SWIMLATENT_LIVE") != "1":
        pytest.skip("live test: set SWIMLATENT_LIVE=1 to talk to danbooru.donmai.us")
    recipe = write_recipe(tmp_path / "recipes", os.environ.get("DANBOORU_API_URL", "https://danbooru.donmai.us"), 4, rps=1.0)
    result = run_cli("--workdir", str(tmp_path / "work"), "collect", str(recipe), timeout=600)
    assert result.returncode == 0, result.stderr
    images = sorted((tmp_path / "work" / "datasets" / "dbtest" / "images").iterdir())
    assert len(images) == 4
    for image in images:  # named by their md5, and verified against it
        assert hashlib.md5(image.read_bytes()).hexdigest() == image.stem

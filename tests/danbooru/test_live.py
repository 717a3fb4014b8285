"""Against the real Danbooru: opt-in only (SWIMLATENT_LIVE=1), marker `live`, never in the default tier.

    SWIMLATENT_LIVE=1 .venv/bin/python -m pytest -m live tests/danbooru/test_live.py

Four images, politely (1 request/s), with the shipped base recipe's searches: 4 years, highest score
first, half rating:g. DANBOORU_LOGIN/DANBOORU_API_KEY are used when set.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3

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
    db = sqlite3.connect(tmp_path / "work" / "datasets" / "dbtest" / "manifest.sqlite")
    rows = db.execute("SELECT split, rating, width * height FROM posts WHERE status = 'downloaded'").fetchall()
    assert sorted(split for split, _, _ in rows) == ["g", "g", "s,q,e", "s,q,e"]
    assert all(rating in split for split, rating, _ in rows) and all(pixels >= 1048576 for *_, pixels in rows)
    key = os.environ.get("DANBOORU_API_KEY")
    if key:
        assert key not in result.stdout + result.stderr

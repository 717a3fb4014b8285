"""`swimlatent report`: terminal tables and the HTML page (inline-SVG plots, thumbnail contact sheet)."""

from __future__ import annotations

import re

from swimlatent_wrap.danbooru.report import score_bins, summarize
from tests.danbooru.conftest import write_recipe
from tests.danbooru.test_collect import populate
from tests.helpers import run_cli


def test_report_after_collect(fake, tmp_path):
    populate(fake, per_group=8)
    for post in fake.posts[:8]:
        post["tag_string_character"] = "hatsune_miku"
    fake.add_post(999, score=200, rating="g", size=300, days_old=400)  # a bigger picture, for a real thumbnail
    recipe = write_recipe(tmp_path, fake.url, 8)
    collected = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert collected.returncode == 0, collected.stderr
    assert "by rating" in collected.stdout and "report at" in collected.stdout  # the brief report ends collect

    result = run_cli("--workdir", str(tmp_path / "w"), "report", str(recipe))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for section in ("by rating", "by year", "by file type", "by resolution", "by score", "skipped by reason",
                    "failed by reason", "top tags", "top artists", "top characters"):
        assert section in out, section
    assert "general" in out and "md5 mismatch" in out and "hidden or banned" in out and "some_artist" in out

    dataset = tmp_path / "w" / "datasets" / "dbtest"
    page = (dataset / "report" / "index.html").read_text()
    assert page.count("<svg") >= 12
    thumbs = re.findall(r'src="thumbs/([0-9a-f]{32}\.jpg)"', page)
    assert len(thumbs) == 8
    from PIL import Image

    for name in thumbs:
        with Image.open(dataset / "report" / "thumbs" / name) as image:
            assert image.format == "JPEG" and max(image.size) <= 200
    with Image.open(dataset / "report" / "thumbs" / f"{fake.posts[-1]['md5']}.jpg") as image:
        assert image.size == (200, 200)  # the 300 px original, scaled down
    for name in re.findall(r'href="\.\./images/([^"]+)"', page):
        assert (dataset / "images" / name).is_file()


def test_missing_manifest_is_a_clear_error(tmp_path):
    recipe = write_recipe(tmp_path, "http://127.0.0.1:9", 4)
    result = run_cli("--workdir", str(tmp_path / "w"), "report", str(recipe))
    assert result.returncode == 1 and "run `swimlatent collect`" in result.stderr and "Traceback" not in result.stderr


def test_summary_counts(tmp_path):
    from swimlatent_wrap.danbooru.manifest import Manifest

    path = tmp_path / "manifest.sqlite"
    with Manifest(path) as manifest:
        for i, (rating, status, reason) in enumerate([("g", "downloaded", None), ("e", "downloaded", None),
                                                      ("g", "skipped", "too small: 5x5"), ("g", "failed", "network: gave up")]):
            manifest.record({"id": i + 1, "md5": f"{i:032x}", "file_ext": "png", "rating": rating, "score": 10 * i,
                             "image_width": 1024, "image_height": 1536, "created_at": "2024-05-01T00:00:00.000-04:00",
                             "tag_string_general": "1girl solo", "tag_string_artist": "ann", "file_size": 1000},
                            rating, status, reason)
    summary = summarize(path)
    assert summary["status"] == {"downloaded": 2, "failed": 1, "skipped": 1}
    assert summary["rating"] == {"general": 1, "explicit": 1}
    assert summary["year"] == {"2024": 2} and summary["resolution"] == {"1-2 MP": 2}
    assert summary["skipped"] == {"too small": 1} and summary["failed"] == {"network": 1}
    assert summary["top_artists"] == [("ann", 2)] and summary["bytes"] == 2000
    assert sum(n for _, n in score_bins(list(range(100)))) == 100

"""`swimlatent report` after tagging: caption statistics in the terminal and on the HTML page."""

from __future__ import annotations

import re

from swimlatent_wrap.danbooru.captions import caption_stats, captions_html, estimate_tokens
from tests.danbooru.conftest import write_recipe
from tests.danbooru.test_collect import populate
from tests.helpers import make_images, run_cli

LONG = ", ".join(f"tag{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(90))  # 90 tags: 179 pieces or more


def collected(fake, tmp_path, max_token_length: int | None = 150):
    populate(fake, per_group=4)
    for post in fake.posts[:4]:
        post["tag_string_character"] = "hatsune_miku"
    recipe = write_recipe(tmp_path, fake.url, 6)
    if max_token_length is not None:
        with recipe.open("a", encoding="utf-8") as handle:
            handle.write(f"\n[args]\nmax_token_length = {max_token_length}\n")
    result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 0, result.stderr
    images = sorted((tmp_path / "w" / "datasets" / "dbtest" / "images").glob("*.png"))
    assert len(images) == 6, images
    return recipe, images


def test_caption_statistics_terminal_and_page(fake, tmp_path):
    recipe, images = collected(fake, tmp_path)
    captions = {images[0]: "hatsune miku, 1girl, solo, long hair, animal ears",
                images[1]: "some artist, 1girl, solo, long hair",
                images[2]: "1girl, solo",
                images[3]: "   \n",  # blank: an empty caption
                images[4]: "1girl, " + LONG}
    for image, text in captions.items():
        image.with_suffix(".txt").write_text(text, encoding="utf-8")
    for image in images[5:]:
        image.with_suffix(".txt").write_text("1girl", encoding="utf-8")
    missing = images[5] if len(images) > 5 else None
    if missing is not None:
        missing.with_suffix(".txt").unlink()  # no caption file: empty too

    from swimlatent_wrap.danbooru.manifest import ManifestFile
    from swimlatent_wrap.tagger.record import ImageTags, ManifestRecorder

    recorder = ManifestRecorder(ManifestFile(tmp_path / "w" / "datasets" / "dbtest" / "manifest.sqlite"), model="test")
    recorder.record([ImageTags(images[0].name, captions[images[0]], [("hatsune_miku", 4, 0.9), ("1girl", 0, 0.99)])])
    recorder.close()

    result = run_cli("--workdir", str(tmp_path / "w"), "report", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    out = result.stdout
    ones = len(images) - 1 - (1 if missing else 0)  # every caption but the blank (and the missing) has 1girl
    assert re.search(rf"caption tags, most frequent.*?1girl\s*│\s*{ones}\b", out, re.S), out
    assert re.search(r"solo\s*│\s*3\b", out)
    assert re.search(r"caption tags, rarest.*?animal ears\s*│\s*1\b", out, re.S), out
    assert re.search(r"characters in captions.*?hatsune miku\s*│\s*1\b", out, re.S), out
    assert re.search(r"artists in captions.*?some artist\s*│\s*1\b", out, re.S), out
    empties = [images[3].name] + ([missing.name] if missing else [])
    assert f"empty captions: {len(empties)}: " in out and all(name in out for name in empties)
    captioned = len(images) - len(empties)
    assert f"captions over max_token_length 150: 1 of {captioned}" in out
    assert "estimate (no CLIP tokenizer" in out and f"{images[4].name}: " in out
    assert "caption lengths are estimated" in result.stderr

    page = (tmp_path / "w" / "datasets" / "dbtest" / "report" / "index.html").read_text(encoding="utf-8")
    assert "<h2>captions</h2>" in page and "caption tags, most frequent" in page and "caption tags, rarest" in page
    assert ">1girl</text>" in page and ">animal ears</text>" in page and ">hatsune miku</text>" in page
    assert all(f"<li>{name}</li>" in page for name in empties)
    assert f"captions over max_token_length 150: 1 of {captioned}" in page and "estimate (no CLIP tokenizer" in page


def test_base_max_token_length_and_no_section_before_tagging(fake, tmp_path):
    recipe, images = collected(fake, tmp_path, max_token_length=None)  # base.toml: 225
    before = run_cli("--workdir", str(tmp_path / "w"), "report", str(recipe))
    assert before.returncode == 0 and "captions:" not in before.stdout and "Traceback" not in before.stderr
    images[0].with_suffix(".txt").write_text("1girl, " + LONG, encoding="utf-8")
    after = run_cli("--workdir", str(tmp_path / "w"), "report", str(recipe))
    assert after.returncode == 0, after.stderr
    assert "captions over max_token_length 225: 0 of 1" in after.stdout
    assert f"empty captions: {len(images) - 1}: " in after.stdout


def test_estimate_and_many_captions_fast(tmp_path):
    import time

    assert estimate_tokens("1girl, long_hair, (smile:1.2)") == 14  # 1 girl , long _ hair , ( smile : 1 . 2 )
    folder = tmp_path / "images"
    make_images(folder, 2)
    for n in range(30000):
        (folder / f"x{n:05d}.png").write_bytes(b"")
        (folder / f"x{n:05d}.txt").write_text("1girl, solo, " + (LONG if n % 100 == 0 else "smile"), encoding="utf-8")
    start = time.monotonic()
    stats = caption_stats(folder, max_tokens=75, tokenizer=None)
    took = time.monotonic() - start
    assert took < 10, took
    assert stats["images"] == 30002 and len(stats["empty"]) == 2 and len(stats["long"]) == 300
    assert stats["top_tags"][:2] == [("1girl", 30000), ("solo", 30000)] and stats["counted_by"].startswith("estimate")
    page = captions_html(stats, lambda items: "")
    assert page.count("tokens</li>") == 200 and "<li>and 100 more</li>" in page  # the page lists 200, then a count

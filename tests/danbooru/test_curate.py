"""`swimlatent curate`: top images by score and size, near-duplicates left out, the user's edits kept."""

from __future__ import annotations

import random
import shutil

import pytest

from swimlatent_wrap.danbooru.manifest import Manifest
from tests.helpers import REPO, run_cli

SHIPPED = REPO / "recipes" / "swim-in-latent"


def picture(seed: int, size=(96, 128)):
    from PIL import Image

    rng = random.Random(seed)
    small = Image.new("RGB", (4, 4))
    small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(16)])
    return small.resize(size)


@pytest.fixture
def style_set(tmp_path):
    images = tmp_path / "work" / "datasets" / "danbooru-ft" / "images"
    images.mkdir(parents=True)
    scores = {}
    for index in range(6):
        name = f"{index:032x}.png"
        picture(index).save(images / name)
        scores[name] = 100 - index * 10  # image 0 scores highest
    # a near-duplicate of image 0: the same picture, larger and a touch brighter, scored just below it
    from PIL import ImageEnhance

    ImageEnhance.Brightness(picture(0, (192, 256))).enhance(1.05).save(images / f"{99:032x}.png")
    scores[f"{99:032x}.png"] = 95
    (images / f"{98:032x}.png").write_bytes(b"not an image")
    with Manifest(tmp_path / "work" / "datasets" / "danbooru-ft" / "manifest.sqlite") as manifest:
        for post_id, (name, score) in enumerate(scores.items(), 1):
            md5, ext = name.split(".")
            manifest.record({"id": post_id, "md5": md5, "file_ext": ext, "score": score, "rating": "g"}, "g", "downloaded")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "ft.toml").write_text(f'extends = "{SHIPPED}/ft.toml"\nname = "ft"\n')
    (recipes / "lora.toml").write_text(f'extends = "{SHIPPED}/lora.toml"\nname = "lora"\n[dataset]\nselect_count = 3\nselection = "lora-selection.txt"\n')
    return tmp_path


def curate(root):
    return run_cli("--workdir", str(root / "work"), "curate", str(root / "recipes" / "lora.toml"))


def test_curate_proposes_the_best_distinct_images(style_set):
    result = curate(style_set)
    assert result.returncode == 0, result.stderr
    selection = (style_set / "recipes" / "lora-selection.txt").read_text().splitlines()
    names = [line for line in selection if not line.startswith("#")]
    assert names == [f"{0:032x}.png", f"{1:032x}.png", f"{2:032x}.png"]  # the brighter twin of 0 is left out
    assert "1 near-duplicates left out" in result.stdout and "1 unreadable" in result.stdout
    page = (style_set / "work" / "datasets" / "danbooru-lora" / "curate" / "index.html").read_text()
    assert page.count("type=checkbox") == 7 and page.count(" checked>") == 3
    assert f"near-duplicate of {0:032x}.png" in page


def test_curate_keeps_the_users_edits(style_set):
    selection = style_set / "recipes" / "lora-selection.txt"
    selection.write_text(f"{5:032x}.png\n")
    result = curate(style_set)
    assert result.returncode == 0, result.stderr
    assert selection.read_text() == f"{5:032x}.png\n"
    assert "kept your" in result.stdout
    proposal = (style_set / "work" / "datasets" / "danbooru-lora" / "curate" / "proposal.txt").read_text()
    assert f"{0:032x}.png" in proposal


def test_curate_needs_a_selection_recipe_and_a_collected_source(style_set):
    result = run_cli("--workdir", str(style_set / "work"), "curate", str(style_set / "recipes" / "ft.toml"))
    assert result.returncode == 1 and "source = \"selection\"" in result.stderr and "Traceback" not in result.stderr
    shutil.rmtree(style_set / "work" / "datasets" / "danbooru-ft" / "images")
    result = curate(style_set)
    assert result.returncode == 1 and "collect dataset 'danbooru-ft' first" in result.stderr


def test_contact_sheet_in_a_headless_browser(style_set, tmp_path):
    """The page's own script, in a real browser: the proposal is ticked, and ticking/unticking changes the
    selection text it saves."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium): the page's script is not exercised")
    import subprocess

    assert curate(style_set).returncode == 0
    folder = style_set / "work" / "datasets" / "danbooru-lora" / "curate"
    page = (folder / "index.html").read_text()
    # A user's clicks, scripted after the page's own script: untick image 1, tick image 4.
    clicks = """<script>
    const box = name => document.querySelector(`input[value="${name}"]`);
    box('%s').click(); box('%s').click();
    const result = document.createElement('pre'); result.id = 'result';
    result.textContent = document.getElementById('selection').value; document.body.append(result);
    </script>""" % (f"{1:032x}.png", f"{4:032x}.png")
    probe = folder / "probe.html"
    probe.write_text(page + clicks)
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    assert '<b id="count">3</b>' in dom.stdout  # the counter follows the clicks
    result = dom.stdout.split('<pre id="result">', 1)[1].split("</pre>", 1)[0]
    names = [line for line in result.splitlines() if line and not line.startswith("#")]
    assert names == [f"{0:032x}.png", f"{2:032x}.png", f"{4:032x}.png"]

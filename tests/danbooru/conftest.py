from __future__ import annotations

import pytest

from tests.danbooru.fake import Fake

BASE = __import__("pathlib").Path(__file__).resolve().parents[2] / "recipes" / "swim-in-latent" / "base.toml"


@pytest.fixture
def fake():
    server = Fake()
    server.url = server.start()
    yield server
    server.stop()


def write_recipe(folder, url, count, *, extra="", dataset_name="dbtest", artists=None, rps=400.0):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f'extends = "{BASE}"', 'name = "dbtest"', "", "[dataset]", f'name = "{dataset_name}"', "",
             "[dataset.danbooru]", f'api_root = "{url}"', f"count = {count}", f"requests_per_second = {rps}",
             "concurrency = 2"]
    if artists is not None:
        (folder / "artists.txt").write_text("".join(a + "\n" for a in artists), encoding="utf-8")
        lines.append('artists = "artists.txt"')
    path = folder / "recipe.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path

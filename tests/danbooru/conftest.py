from __future__ import annotations

from pathlib import Path

import pytest

from tests.danbooru.fake import Fake

BASE = Path(__file__).resolve().parents[2] / "recipes" / "swim-in-latent" / "base.toml"


@pytest.fixture
def fake():
    server = Fake()
    server.start()
    yield server
    server.stop()


def write_recipe(folder: Path, url: str, count: int, *, extra: str = "", dataset_name: str = "dbtest",
                 artists: list[str] | None = None, rps: float = 400.0, concurrency: int = 2) -> Path:
    """A recipe extending the shipped base.toml (4 years, score order, 50/50 g vs s,q,e, >= 1 MP),
    pointed at ``url``; ``extra`` lines go into its [dataset.danbooru] table."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f'extends = "{BASE}"', 'name = "dbtest"', "", "[dataset]", f'name = "{dataset_name}"', "",
             "[dataset.danbooru]", f'api_root = "{url}"', f"count = {count}", f"requests_per_second = {rps}",
             f"concurrency = {concurrency}", extra]
    if artists is not None:
        (folder / "artists.txt").write_text("".join(a + "\n" for a in artists), encoding="utf-8")
        lines.append('artists = "artists.txt"')
    path = folder / "recipe.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

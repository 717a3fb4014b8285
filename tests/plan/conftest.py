from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO

BASE = REPO / "recipes" / "swim-in-latent" / "base.toml"


@pytest.fixture
def write_recipe(tmp_path):
    """Write a recipe file (dedented) into tmp_path/recipes/ and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / "recipes" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("@BASE@", str(BASE)), encoding="utf-8")
        return path

    return write

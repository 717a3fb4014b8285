"""The tagger model from the Hugging Face Hub when the Hub cannot be reached: a cached model is used
without a request; an uncached one is one clear line at once, not half a minute of retries."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import run_cli

REPO_ID = "SmilingWolf/wd-v1-4-swinv2-tagger-v2"
UNREACHABLE = {"HF_ENDPOINT": "http://hub.invalid"}  # .invalid never resolves (RFC 2606)


def hub_cache(home: Path, model: Path) -> None:
    """The Hugging Face cache layout (hub/models--owner--name/{refs/main, snapshots/<rev>/}) holding ``model``'s files."""
    repo = home / "hub" / ("models--" + REPO_ID.replace("/", "--"))
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name in ("model.onnx", "selected_tags.csv"):
        shutil.copy(model / name, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


def test_an_uncached_model_with_the_hub_unreachable_is_one_clear_line(tmp_path, images):
    folder = images("red.png")
    result = run_cli("tag", "--images", str(folder), env={"HF_HOME": str(tmp_path / "hf"), **UNREACHABLE})
    assert result.returncode == 1, result.stderr
    assert "hub.invalid cannot be reached" in result.stderr and "offline?" in result.stderr
    assert "Retrying" not in result.stderr and "Traceback" not in result.stderr


def test_a_cached_model_tags_with_the_hub_unreachable(tmp_path, images, tiny_model):
    folder = images("red.png")
    hub_cache(tmp_path / "hf", tiny_model)
    result = run_cli("tag", "--images", str(folder), env={"HF_HOME": str(tmp_path / "hf"), **UNREACHABLE})
    assert result.returncode == 0, result.stderr
    assert (folder / "red.txt").read_text(encoding="utf-8").strip()

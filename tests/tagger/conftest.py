from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from swimlatent_wrap.cli import main
from tests.tagger import scenes
from tests.tagger.tiny_tagger import build_tiny_tagger


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny tagger (input ``input_1:0``, dynamic batch), built once."""
    return build_tiny_tagger(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def scene_files(tmp_path_factory) -> Path:
    """Every test image, written once; tests copy what they need."""
    return scenes.write_scenes(tmp_path_factory.mktemp("scenes") / "all")[0].parent


@pytest.fixture
def images(tmp_path, scene_files):
    """``images(*names)`` → a fresh folder with copies of those scenes (all when none named)."""

    def make(*names: str, folder: str = "images") -> Path:
        target = tmp_path / folder
        target.mkdir(parents=True, exist_ok=True)
        for name in names or scenes.SCENES:
            shutil.copy2(scene_files / name, target / name)
        return target

    return make


@pytest.fixture
def tag(capsys):
    """``tag(*argv)`` runs `swimlatent tag ARGV` in this process → (exit code, stdout, stderr)."""

    def run(*argv: str):
        code = main(["tag", *[str(a) for a in argv]])
        out, err = capsys.readouterr()
        return code, out, err

    return run

"""Files written through swimlatent_wrap.atomic (captions, plans, pages, thumbnails, grid.png,
selection files) get the modes any new file gets, 0666 less the umask, and a replaced file keeps its
own mode (issue 15: mkstemp's 0600 used to stick to every one of them).

The CLI cases run `swimlatent curate` (thumbnails, proposal, selection file, contact sheet) in a child
whose umask is set by a tiny shell wrapper; the unit cases set os.umask around atomic.write_text.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from swimlatent_wrap import atomic
from tests.helpers import REPO

SHIPPED = REPO / "recipes" / "swim-in-latent"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _with_umask(umask: int, *argv: str) -> subprocess.CompletedProcess:
    """`swimlatent ARGV` in a child started as `sh -c 'umask U; exec python -m swimlatent_wrap ARGV'`."""
    script = f'umask {umask:03o}; exec "$0" -m swimlatent_wrap "$@"'
    return subprocess.run(["sh", "-c", script, sys.executable, *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def _selection_set(root: Path) -> Path:
    """A collected source dataset of four small images and a selection recipe that curates it."""
    from PIL import Image

    from swimlatent_wrap.danbooru.manifest import Manifest

    images = root / "work" / "datasets" / "danbooru-ft" / "images"
    images.mkdir(parents=True)
    with Manifest(root / "work" / "datasets" / "danbooru-ft" / "manifest.sqlite") as manifest:
        for index in range(4):
            rng = random.Random(index)
            small = Image.new("RGB", (4, 4))
            small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(16)])
            name = f"{index:032x}.png"
            small.resize((96, 128)).save(images / name)
            manifest.record({"id": index + 1, "md5": name[:-4], "file_ext": "png", "score": 100 - index, "rating": "g"},
                            "g", "downloaded")
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "ft.toml").write_text(f'extends = "{SHIPPED}/ft.toml"\nname = "ft"\n')
    lora = recipes / "lora.toml"
    lora.write_text(f'extends = "{SHIPPED}/lora.toml"\nname = "lora"\n[dataset]\nselect_count = 2\n'
                    'selection = "lora-selection.txt"\n')
    return lora


def _curated(root: Path) -> dict[str, Path]:
    folder = root / "work" / "datasets" / "danbooru-lora" / "curate"
    files = {"selection": root / "recipes" / "lora-selection.txt", "proposal": folder / "proposal.txt",
             "page": folder / "index.html"}
    thumbs = sorted((folder / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 4
    files.update({f"thumb {t.name}": t for t in thumbs})
    return files


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002], ids=oct)
def test_curate_writes_files_with_the_umask_mode(tmp_path, umask):
    recipe = _selection_set(tmp_path)
    result = _with_umask(umask, "--workdir", str(tmp_path / "work"), "curate", str(recipe))
    assert result.returncode == 0, result.stderr
    modes = {name: oct(_mode(path)) for name, path in _curated(tmp_path).items()}
    assert modes == {name: oct(0o666 & ~umask) for name in modes}
    assert list(tmp_path.rglob("*.part")) == []


def test_a_rewritten_file_keeps_its_mode_whatever_the_umask(tmp_path):
    recipe = _selection_set(tmp_path)
    first = _with_umask(0o022, "--workdir", str(tmp_path / "work"), "curate", str(recipe))
    assert first.returncode == 0, first.stderr
    files = _curated(tmp_path)
    files["proposal"].chmod(0o640)
    files["page"].chmod(0o604)
    files["proposal"].write_text("stale\n")
    again = _with_umask(0o077, "--workdir", str(tmp_path / "work"), "curate", str(recipe))
    assert again.returncode == 0, again.stderr
    assert files["proposal"].read_text() != "stale\n"  # it was rewritten …
    assert _mode(files["proposal"]) == 0o640 and _mode(files["page"]) == 0o604  # … and kept its mode


@pytest.fixture
def umask():
    """os.umask, for one test: the process's own umask is put back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o000], ids=oct)
def test_write_text_honours_the_umask(tmp_path, umask, mask):
    umask(mask)
    target = tmp_path / "sub" / "caption.txt"
    atomic.write_text(target, "a, b\n")
    atomic.write_bytes(tmp_path / "grid.png", b"\x89PNG")
    assert _mode(target) == 0o666 & ~mask and _mode(tmp_path / "grid.png") == 0o666 & ~mask
    assert target.read_text() == "a, b\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["caption.txt"]


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o077)
    script = tmp_path / "command.sh"
    script.write_text("old\n")
    script.chmod(0o755)
    atomic.write_text(script, "new\n")
    assert script.read_text() == "new\n" and _mode(script) == 0o755
    shared = tmp_path / "plan.toml"
    shared.write_text("")
    shared.chmod(0o664)
    atomic.write_bytes(shared, b"x = 1\n")
    assert _mode(shared) == 0o664


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "page.html"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("stop")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]

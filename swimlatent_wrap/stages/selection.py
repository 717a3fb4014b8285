"""A `source = "selection"` dataset: the images named in a selection file, taken from another
dataset, linked into this dataset's own images folder so sd-scripts trains on exactly them.

Hard links (a copy where the filesystem refuses one), caption files with them; files no longer
selected are removed from the folder (never from the source dataset). Idempotent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.workdir import Workdir


def read_selection(path: Path) -> list[str]:
    """File names, one per line; blank lines and `#` comments skipped."""
    if not path.is_file():
        raise UserError(f"{path}: selection file not found; write it with `swimlatent curate` or by hand (one image file name per line)")
    names = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "/" in line or line in (".", ".."):
            raise UserError(f"{path}: line {number}: expected a file name from the source dataset's images folder, got {line!r}")
        names.append(line)
    if not names:
        raise UserError(f"{path}: the selection is empty; list the images to train on, one file name per line")
    return names


def _link(source: Path, target: Path) -> None:
    if target.exists():
        if os.path.samefile(source, target):
            return
        target.unlink()
    temp = target.with_name(f".{target.name}.part")
    temp.unlink(missing_ok=True)
    try:
        os.link(source, temp)
    except OSError:
        shutil.copy2(source, temp)
    os.replace(temp, target)


def materialize_selection(recipe: Recipe, workdir: Workdir) -> list[Path]:
    """Link the selected images (and their .txt captions) into the recipe's dataset folder."""
    dataset = recipe.dataset
    if dataset.source != "selection":
        raise ValueError("materialize_selection is for source = 'selection' datasets")
    source_dir = workdir.images_dir(dataset.from_dataset)
    target_dir = workdir.images_dir(dataset.name)
    names = read_selection(dataset.selection)
    missing = [name for name in names if not (source_dir / name).is_file()]
    if missing:
        raise UserError(f"{dataset.selection}: {len(missing)} selected image(s) not in {source_dir}, e.g. {missing[0]!r}; "
                        f"collect {dataset.from_dataset!r} first or fix the selection")
    target_dir.mkdir(parents=True, exist_ok=True)
    wanted: set[str] = set()
    linked = []
    for name in names:
        image = source_dir / name
        _link(image, target_dir / name)
        wanted.add(name)
        linked.append(target_dir / name)
        caption = image.with_suffix(".txt")
        if caption.is_file():
            _link(caption, target_dir / caption.name)
            wanted.add(caption.name)
    for stale in target_dir.iterdir():
        if stale.is_file() and stale.name not in wanted and stale.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".txt"}:
            stale.unlink()
    return linked

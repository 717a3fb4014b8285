"""A `source = "selection"` dataset: the images named in a selection file, taken from another
dataset, linked into this dataset's own images folder so sd-scripts trains on exactly them.

Hard links (a copy where the filesystem refuses one), caption files with them; files no longer
selected are removed from the folder (never from the source dataset). Idempotent. While linking, this
dataset is locked and the source is held shared (swimlatent_wrap.locks), so no collect or tag of
either changes them half-way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from swimlatent_wrap import locks
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.images import CAPTION_SUFFIX, caption_of, is_image
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.selection_file import read_selection
from swimlatent_wrap.workdir import Workdir


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


def selection_source(recipe: Recipe) -> tuple[str, Path]:
    """(from_dataset, selection file) of a source = "selection" dataset. `validate` refuses one without
    both; this says so again for a caller that did not validate."""
    dataset = recipe.dataset
    if dataset.from_dataset is None or dataset.selection is None:
        missing = " and ".join(f"`{key}`" for key, value in (("from_dataset", dataset.from_dataset),
                                                            ("selection", dataset.selection)) if value is None)
        raise UserError(f"{recipe.path}: [dataset] source = \"selection\" needs {missing}")
    return dataset.from_dataset, dataset.selection


def materialize_selection(recipe: Recipe, workdir: Workdir) -> list[Path]:
    """Link the selected images (and their .txt captions) into the recipe's dataset folder."""
    dataset = recipe.dataset
    if dataset.source != "selection":
        raise ValueError("materialize_selection is for source = 'selection' datasets")
    from_dataset, selection = selection_source(recipe)
    with locks.dataset(workdir.dataset_dir(dataset.name), doing="select"), \
            locks.dataset(workdir.dataset_dir(from_dataset), doing="select (reading)", shared=True):
        return _materialize(workdir.images_dir(from_dataset), workdir.images_dir(dataset.name), from_dataset, selection)


def _materialize(source_dir: Path, target_dir: Path, from_dataset: str, selection: Path) -> list[Path]:
    names = read_selection(selection)
    missing = [name for name in names if not (source_dir / name).is_file()]
    if missing:
        raise UserError(f"{selection}: {len(missing)} selected image(s) not in {source_dir}, e.g. {missing[0]!r}; "
                        f"collect {from_dataset!r} first or fix the selection")
    target_dir.mkdir(parents=True, exist_ok=True)
    wanted: set[str] = set()
    linked = []
    for name in names:
        image = source_dir / name
        _link(image, target_dir / name)
        wanted.add(name)
        linked.append(target_dir / name)
        caption = caption_of(image)
        if caption.is_file():
            _link(caption, target_dir / caption.name)
            wanted.add(caption.name)
    for stale in target_dir.iterdir():
        if stale.is_file() and stale.name not in wanted and (is_image(stale) or stale.suffix == CAPTION_SUFFIX):
            stale.unlink()
    return linked

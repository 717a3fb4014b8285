"""Which images of a folder still need a caption: the resume logic of `swimlatent tag`.

An image is captioned when `<stem>.txt` exists beside it. Captions are only ever written whole
(temp file + rename), so an existing caption file is a finished one and is left alone unless
``force``. Only the folder itself is searched, as sd-scripts' dataset reader does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.images import IMAGE_SUFFIXES, has_caption, images_in


@dataclass
class Work:
    folder: Path
    pending: list[Path] = field(default_factory=list)  # to caption, in name order
    captioned: list[Path] = field(default_factory=list)  # already have a caption: skipped
    # Images whose `<stem>.txt` belongs to an earlier image of the same stem (a.jpg and a.png):
    # sd-scripts would read that one caption for both, so only the first is captioned.
    clashes: list[Path] = field(default_factory=list)


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder of images")
    return images_in(folder)


def find_work(folder: Path, force: bool = False, only: Sequence[str] | None = None) -> Work:
    """Sort the folder's images into pending, already captioned and stem clashes.
    ``only``: restrict to these file names (a curated selection); each must be in the folder."""
    images = list_images(folder)
    if only is not None:
        wanted = set(only)
        missing = sorted(wanted - {p.name for p in images})
        if missing:
            raise UserError(f"{folder}: {len(missing)} selected image(s) are not in this folder, e.g. {missing[0]!r}")
        images = [p for p in images if p.name in wanted]
    if not images:
        raise UserError(f"{folder}: no images to caption (looked for {' '.join(IMAGE_SUFFIXES)})")
    work = Work(folder)
    stems: set[str] = set()
    for image in images:
        if image.stem in stems:
            work.clashes.append(image)
            continue
        stems.add(image.stem)
        if not force and has_caption(image):  # a blank caption file is no caption (sd-scripts trains on "")
            work.captioned.append(image)
        else:
            work.pending.append(image)
    return work

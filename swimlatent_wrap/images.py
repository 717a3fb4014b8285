"""What counts as a training image, and its caption, declared once.

sd-scripts trains on the files whose suffix is in library/train_util.py IMAGE_EXTENSIONS (either
case); the caption of ``a.png`` is ``a<caption_extension>`` beside it (``.txt`` by default), and an
image whose caption file is missing or blank trains on an empty caption.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CAPTION_SUFFIX = ".txt"


def is_image(path: Path) -> bool:
    """A training image by its name: an image suffix, not hidden (sd-scripts globs `*.png` …, which skips dotfiles)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def images_in(folder: Path) -> list[Path]:
    """The training images directly in ``folder``, sorted by name (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))


def caption_of(image: Path, extension: str = CAPTION_SUFFIX) -> Path:
    return image.with_name(image.stem + extension)


def has_caption(image: Path, extension: str = CAPTION_SUFFIX) -> bool:
    """Whether the image's caption file exists and holds more than whitespace."""
    try:
        return bool(caption_of(image, extension).read_text(encoding="utf-8", errors="replace").strip())
    except OSError:
        return False


def file_type_problem(types: list[str] | tuple[str, ...]) -> str | None:
    """[dataset.danbooru] file_types: extensions sd-scripts trains on (others would be collected, then skipped)."""
    wrong = [t for t in types if "." + t.lower().lstrip(".") not in IMAGE_SUFFIXES]
    if wrong:
        return (f"{wrong[0]!r} is not an image type sd-scripts trains on; use "
                + ", ".join(s.lstrip(".") for s in IMAGE_SUFFIXES))
    return None if types else "list at least one file type (e.g. [\"jpg\", \"png\", \"webp\"])"

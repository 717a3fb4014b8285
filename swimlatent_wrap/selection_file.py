"""The selection file of a `source = "selection"` dataset: one image file name per line, from the
source dataset's images folder; blank lines and `#` comments skipped. `swimlatent curate` writes it,
the user may edit it, `validate` checks it when it exists, `tag` and the stage read it."""

from __future__ import annotations

from pathlib import Path

from swimlatent_wrap.errors import UserError

NOT_WRITTEN = "selection file not found; write it with `swimlatent curate` or by hand (one image file name per line)"


def _parse(path: Path) -> tuple[list[str], str | None]:
    """The names and, when the file cannot be used, why."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [], f"cannot read it: {error}"
    names = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "/" in line or "\\" in line or line in (".", ".."):
            return [], f"line {number}: expected a file name from the source dataset's images folder, got {line!r}"
        names.append(line)
    return names, None if names else "the selection is empty; list the images to train on, one file name per line"


def selection_problem(path: Path) -> str | None:
    """What is wrong with an existing selection file (None when it lists at least one plain file name)."""
    return _parse(path)[1]


def read_selection(path: Path) -> list[str]:
    """The file names, in order; UserError naming the file when it is missing or unusable."""
    if not path.is_file():
        raise UserError(f"{path}: {NOT_WRITTEN}")
    names, problem = _parse(path)
    if problem:
        raise UserError(f"{path}: {problem}")
    return names

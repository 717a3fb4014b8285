"""selected_tags.csv: the tagger's label list, one row per model output, in output order."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from swimlatent_wrap.errors import UserError

# Danbooru tag categories as SmilingWolf's selected_tags.csv numbers them.
RATING = 9
GENERAL = 0
CHARACTER = 4


@dataclass(frozen=True)
class Labels:
    """Tag names and categories, index i describing model output i."""

    names: tuple[str, ...]
    categories: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.names)

    def indices(self, category: int) -> list[int]:
        return [i for i, c in enumerate(self.categories) if c == category]


def read_labels(path: Path) -> Labels:
    """Read a WD14 selected_tags.csv (columns tag_id,name,category,count); UserError if it is not one."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise UserError(f"{path}: cannot read the tag list: {error.strerror or error}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: not a CSV tag list: {error}") from None
    if not rows or [cell.strip() for cell in rows[0][:3]] != ["tag_id", "name", "category"]:
        header = ",".join(rows[0]) if rows else "(empty file)"
        raise UserError(f"{path}: expected a WD14 selected_tags.csv starting with the columns tag_id,name,category; got {header!r}")
    names: list[str] = []
    categories: list[int] = []
    for line_number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 3:
            raise UserError(f"{path}: line {line_number}: expected tag_id,name,category[,count], got {','.join(row)!r}")
        try:
            category = int(row[2])
        except ValueError:
            raise UserError(f"{path}: line {line_number}: category must be a number, got {row[2]!r}") from None
        names.append(row[1])
        categories.append(category)
    if not names:
        raise UserError(f"{path}: the tag list has a header but no tags")
    return Labels(tuple(names), tuple(categories))

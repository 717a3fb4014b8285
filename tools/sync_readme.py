#!/usr/bin/env python3
"""Rewrite the generated parts of README.md (the recipe reference) from the code's declarations.

    python tools/sync_readme.py          (tests/plan/test_docs.py fails when the README is stale)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swimlatent_wrap.recipe.reference import recipe_reference  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- recipe-reference:start -->", "<!-- recipe-reference:end -->"


def synced(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{recipe_reference()}{END}{tail}"


if __name__ == "__main__":
    README.write_text(synced(README.read_text(encoding="utf-8")), encoding="utf-8")

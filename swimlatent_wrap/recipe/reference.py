"""The recipe reference as markdown, derived from the table declarations (README stays in sync:
tests/plan/test_docs.py compares the README's copy with this)."""

from __future__ import annotations

import json

from swimlatent_wrap.recipe.schema import REQUIRED, Field, PathKind, Table
from swimlatent_wrap.values import Domain


def _default(field: Field) -> str:
    if field.default is REQUIRED:
        return "required"
    if field.default is None or (isinstance(field.kind, PathKind) and not field.default):
        return "—"
    return "`" + json.dumps(field.default, ensure_ascii=False) + "`"


def _table(table: Table, title: str) -> list[str]:
    lines = [f"**{title}** — {table.help}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for field in table.fields:
        kind = field.kind.name + (f", {field.check.text()}" if isinstance(field.check, Domain) else "")
        kind, meaning = (text.replace("|", "\\|") for text in (kind, field.help))
        lines.append(f"| `{field.name}` | {kind} | {_default(field)} | {meaning} |")
    lines.append("")
    for sub in table.subtables:
        lines += _table(sub, f"[[{title.strip('[]')}.{sub.name}]]" if sub.array else f"[{title.strip('[]')}.{sub.name}]")
    return lines


def recipe_reference() -> str:
    from swimlatent_wrap.recipe.load import SDSCRIPTS_TABLES, TOP_LEVEL
    from swimlatent_wrap.recipe.tables import WRAPPER_TABLES

    lines = _table(TOP_LEVEL, "Top level")
    for name, help_text in SDSCRIPTS_TABLES.items():
        lines += [f"**[{name}]** — {help_text}.", ""]
    for name, table in WRAPPER_TABLES.items():
        lines += _table(table, f"[{name}]")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(recipe_reference(), end="")

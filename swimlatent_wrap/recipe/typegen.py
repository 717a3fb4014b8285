"""Write `recipe/types.py`: one frozen dataclass per wrapper table, from its `Field` declarations.

    python -m swimlatent_wrap.recipe.typegen      (tests/recipe/test_types.py fails when it is stale)

The declarations stay the one place a key is defined; this turns them into types that mypy checks
at every use (``recipe.dataset.danbooru.count`` is an ``int``), and that the loader fills.
"""

from __future__ import annotations

import json
from pathlib import Path

from swimlatent_wrap.recipe.schema import BOOL, FLOAT, INT, REQUIRED, STR, TABLE, Choice, Field, Kind, ListOf, PathKind, Table

TYPES_PATH = Path(__file__).with_name("types.py")


def class_name(qualified: str) -> str:
    return "".join(part.capitalize() for part in qualified.replace("_", ".").split("."))


def _python_type(kind: Kind) -> str:
    if kind is STR:
        return "str"
    if kind is INT:
        return "int"
    if kind is FLOAT:
        return "float"
    if kind is BOOL:
        return "bool"
    if kind is TABLE:
        return "dict[str, Any]"
    if isinstance(kind, ListOf):
        return f"tuple[{_python_type(kind.item)}, ...]"
    if isinstance(kind, Choice):
        return "Literal[" + ", ".join(json.dumps(c) for c in kind.choices) + "]"
    if isinstance(kind, PathKind):
        return "Path"
    raise TypeError(f"no Python type for {kind!r}")


def _default(field: Field) -> str:
    value = field.default
    if value is REQUIRED:
        return ""
    if isinstance(value, list):
        return " = " + repr(tuple(value))
    return " = " + repr(value)


def _field_line(field: Field) -> str:
    annotation = _python_type(field.kind)
    if field.default is None:
        annotation += " | None"
    return f"    {field.name}: {annotation}{_default(field)}"


def _classes(table: Table, qualified: str) -> list[str]:
    out: list[str] = []
    for sub in table.subtables:
        out += _classes(sub, f"{qualified}.{sub.name}")
    lines = ["@dataclass(frozen=True)", f"class {class_name(qualified)}(TableValues):",
             f'    """[{qualified}]{" (an array of tables)" if table.array else ""}: {table.help}"""', ""]
    required = [f for f in table.fields if f.default is REQUIRED]
    for field in required + [f for f in table.fields if f.default is not REQUIRED]:
        lines.append(_field_line(field))
    for sub in table.subtables:
        name = class_name(f"{qualified}.{sub.name}")
        lines.append(f"    {sub.name}: tuple[{name}, ...] = ()" if sub.array else f"    {sub.name}: {name} | None = None")
    out.append("\n".join(lines))
    return out


def _qualified(table: Table, qualified: str) -> list[str]:
    names = [qualified]
    for sub in table.subtables:
        names += _qualified(sub, f"{qualified}.{sub.name}")
    return names


def source() -> str:
    from swimlatent_wrap.recipe.tables import WRAPPER_TABLES

    classes: list[str] = []
    qualified: list[str] = []
    for name, table in WRAPPER_TABLES.items():
        classes += _classes(table, name)
        qualified += _qualified(table, name)
    registry = "\n".join(f"    {json.dumps(q)}: {class_name(q)}," for q in qualified)
    return f'''"""The recipe's tables as frozen dataclasses. Generated from the `Field` declarations in
`recipe/tables/` by `python -m swimlatent_wrap.recipe.typegen`; do not edit by hand."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class TableValues:
    """A validated table: every declared key present, defaults filled, paths absolute."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


{(chr(10) * 3).join(classes)}


# table name (dotted for subtables) → its class, for the loader
TABLE_TYPES: dict[str, type[TableValues]] = {{
{registry}
}}
'''


if __name__ == "__main__":
    TYPES_PATH.write_text(source(), encoding="utf-8")
    print(f"wrote {TYPES_PATH}")

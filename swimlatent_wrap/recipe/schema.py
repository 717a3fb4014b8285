"""How the wrapper's own recipe tables are declared: each field once, with type, default and help.

Validation, defaults and the README's recipe reference all derive from these declarations.
A ``Kind`` checks one TOML value and returns it converted (an int where a float belongs becomes a
float); on a mismatch it raises ``KindError`` with an "expected …, got …" message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from swimlatent_wrap.values import describe, not_finite

REQUIRED = object()  # a Field default meaning "must be given"


class KindError(ValueError):
    """A value does not fit its declared kind; the message says what was expected and what came."""


class Kind:
    name = "value"

    def convert(self, value: Any) -> Any:
        raise NotImplementedError


class _Str(Kind):
    name = "a string"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise KindError(f"expected a string, got {describe(value)}")
        return value


class _Int(Kind):
    name = "an integer"

    def convert(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise KindError(f"expected an integer, got {describe(value)}")
        return value


class _Float(Kind):
    name = "a number"

    def convert(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise KindError(f"expected a number, got {describe(value)}")
        if (problem := not_finite(value)) is not None:
            raise KindError(problem)
        return float(value)


class _Bool(Kind):
    name = "true or false"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise KindError(f"expected true or false, got {describe(value)}")
        return value


class _Table(Kind):
    name = "a table"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise KindError(f"expected a table, got {describe(value)}")
        return value


@dataclass(frozen=True)
class ListOf(Kind):
    item: Kind

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"an array of {self.item.name.removeprefix('a ').removeprefix('an ')}s"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, list):
            raise KindError(f"expected {self.name}, got {describe(value)}")
        out = []
        for index, item in enumerate(value):
            try:
                out.append(self.item.convert(item))
            except KindError as error:
                raise KindError(f"item {index + 1}: {error}") from None
        return out


@dataclass(frozen=True)
class Choice(Kind):
    choices: tuple[str, ...]

    @property
    def name(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def convert(self, value: Any) -> Any:
        if value not in self.choices or isinstance(value, bool):
            raise KindError(f"expected {self.name}, got {describe(value)}")
        return value


@dataclass(frozen=True)
class PathKind(Kind):
    """A file or folder path, relative to the recipe file that sets it; resolved at load time."""

    must_exist: bool = True
    folder: bool = False

    @property
    def name(self) -> str:  # type: ignore[override]
        return "a path (string)"

    def convert(self, value: Any) -> Any:
        if not isinstance(value, str) or not value:
            raise KindError(f"expected a path (string), got {describe(value)}")
        return value


STR = _Str()
INT = _Int()
FLOAT = _Float()
BOOL = _Bool()
TABLE = _Table()


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    default: Any = None
    help: str = ""
    # Extra check on the converted value; returns an error message or None.
    check: Callable[[Any], str | None] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Table:
    """A wrapper-owned recipe table, e.g. [captions], or an array of tables when ``array``."""

    name: str
    help: str
    fields: Sequence[Field] = ()
    subtables: Sequence["Table"] = ()
    array: bool = False  # [[name]]: a list of tables sharing this declaration
    # Checks across fields of one table, on the converted values (defaults filled):
    # returns (key, message) pairs.
    check: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None

    def field_map(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    def subtable_map(self) -> dict[str, "Table"]:
        return {t.name: t for t in self.subtables}

    def keys(self) -> list[str]:
        return [f.name for f in self.fields] + [t.name for t in self.subtables]

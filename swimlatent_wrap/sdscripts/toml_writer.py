"""A small, deterministic TOML writer for the files sd-scripts reads (args.toml, dataset.toml).

sd-scripts reads them with the old `toml` package (0.10.2), so we keep to the plain subset it
parses: basic strings, ints, floats written with a decimal point or exponent (so a float stays a
float, facts §0.17), booleans, arrays of scalars, tables and arrays of tables. Key order is the
order given: callers decide it, so reruns are byte-identical.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} to TOML for sd-scripts")
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        # JSON string escaping is valid TOML basic-string escaping for every character JSON emits.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        if any(isinstance(item, (dict, list)) for item in value):
            raise ValueError("nested arrays are not written for sd-scripts")
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _emit_table(lines: list[str], path: list[str], table: dict[str, Any], header: str | None) -> None:
    if header is not None:
        if lines:
            lines.append("")
        lines.append(header)
    for key, value in table.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            lines.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            sub = path + [key]
            _emit_table(lines, sub, value, "[" + ".".join(_key(k) for k in sub) + "]")
        elif _is_table_array(value):
            sub = path + [key]
            for item in value:
                _emit_table(lines, sub, item, "[[" + ".".join(_key(k) for k in sub) + "]]")


def dumps(document: dict[str, Any]) -> str:
    lines: list[str] = []
    _emit_table(lines, [], document, None)
    return "\n".join(lines) + "\n"

"""An argparse parser with exactly the options of one sd-scripts script, built from the manifest.

Used by the stand-in scripts of the default test tier, so that an option the real script lacks,
a flag given a value, or a value of the wrong type fails there as it would in sd-scripts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from swimlatent_wrap.sdscripts.manifest import Option, load_manifest


def _int_or_float(text: str) -> int | float:
    """sd-scripts' int_or_float: "5%" → 0.05, a value ≥ 1 → an int step count ("1.5" is refused), else a ratio."""
    if text.endswith("%"):
        try:
            return float(text[:-1]) / 100.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"Value '{text}' is not a valid percentage") from None
    try:
        value = float(text)
        return int(text) if value >= 1 else value
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an int or float") from None


_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "Path": Path, "int_or_float": _int_or_float}


def _add(parser: argparse.ArgumentParser, option: Option) -> None:
    if option.kind == "positional":
        parser.add_argument(option.name, type=_TYPES.get(option.type, str))
        return
    flag = f"--{option.name}"
    if option.kind == "flag":
        parser.add_argument(flag, action="store_true")
        return
    kwargs: dict[str, Any] = {"type": _TYPES.get(option.type, str), "default": option.default}
    if option.kind == "list":
        kwargs["nargs"] = "*"
    if option.choices is not None:
        # as sd-scripts declares them: None stays a choice (the default), numbers are numbers
        convert: Callable[[Any], Any] = _TYPES.get(option.type, str) if option.type in ("int", "float") else (lambda c: c)
        kwargs["choices"] = [convert(c) if c is not None else None for c in option.choices]
    parser.add_argument(flag, **kwargs)


def build_parser(script: str) -> argparse.ArgumentParser:
    """sd-scripts keeps argparse's abbreviation matching on (facts §0.3); so does this parser."""
    parser = argparse.ArgumentParser(prog=f"{script}.py")
    for option in load_manifest().script(script).options.values():
        _add(parser, option)
    return parser

"""sd-scripts command lines: one builder, every option checked against the option manifest.

    command_argv(manifest, script, *, python, sd_scripts, options) -> [python, <checkout>/<file>, ...]
    script_argv(manifest, script, *, sd_scripts, options)          -> [<checkout>/<file>, ...]
    options_argv(program, table, options)                          -> [...] for any table of Options

``options`` is an ordered mapping of option name → value, written in that order (positionals first):
flag → True is ``--name`` alone, False leaves it out; valued → ``--name value``; list → a list or
tuple, ``--name v1 v2 …``; positional → ``value``. Each value is written as ``str(value)``: ints as
``1``, floats as Python writes them (``0.5``, ``1.0``), paths as their text. The script's path is its
manifest ``file`` inside the checkout. A name the script lacks, a value of the wrong shape or one
outside the option's choices is refused (facts §0: sd-scripts itself would not say).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.sdscripts.manifest import Manifest, Option, Script


def script_entry(manifest: Manifest, script: str) -> Script:
    if script not in manifest.scripts:
        raise UserError(f"the option manifest has no sd-scripts script {script!r} (it has {', '.join(sorted(manifest.scripts))})")
    return manifest.scripts[script]


def command_argv(manifest: Manifest, script: str, *, python: str, sd_scripts: Path | str,
                 options: Mapping[str, Any]) -> list[str]:
    """``python <checkout>/<file> <options>``: a script run by the Python itself."""
    return [str(python), *script_argv(manifest, script, sd_scripts=sd_scripts, options=options)]


def script_argv(manifest: Manifest, script: str, *, sd_scripts: Path | str, options: Mapping[str, Any]) -> list[str]:
    """``<checkout>/<file> <options>``: the script and its options, for a launcher to put in front."""
    entry = script_entry(manifest, script)
    program = f"sd-scripts' {Path(entry.file).name} (commit {manifest.commit[:8]})"
    return [str(Path(sd_scripts) / entry.file), *options_argv(program, entry.options, options)]


def options_argv(program: str, table: Mapping[str, Option], options: Mapping[str, Any]) -> list[str]:
    """``options`` as command-line words, each checked against ``table`` (``program`` names it in errors)."""
    positionals: list[str] = []
    named: list[str] = []
    for name, value in options.items():
        option = table.get(name)
        if option is None:
            raise UserError(f"{program} has no option --{name}")
        if option.kind == "flag":
            if not isinstance(value, bool):
                raise UserError(f"{program} --{name} is a flag: give True or False, not {value!r}")
            if value:
                named.append(f"--{name}")
        elif option.kind == "list":
            if not isinstance(value, (list, tuple)) or not value:
                raise UserError(f"{program} --{name} takes a list of values: give a non-empty list, not {value!r}")
            named += [f"--{name}", *(_word(program, option, item) for item in value)]
        elif option.kind == "valued":
            named += [f"--{name}", _word(program, option, value)]
        elif option.kind == "positional":
            positionals.append(_word(program, option, value))
        else:
            raise UserError(f"{program} --{name}: unknown option kind {option.kind!r} in the manifest")
    return positionals + named


def _word(program: str, option: Option, value: Any) -> str:
    if value is None or isinstance(value, (bool, list, tuple, dict)):
        raise UserError(f"{program} --{option.name} takes one value: give a string, number or path, not {value!r}")
    if option.choices is not None and value not in option.choices:
        choices = ", ".join(str(c) for c in option.choices if c is not None)
        raise UserError(f"{program} --{option.name}: expected one of {choices}, got {value!r}")
    return str(value)

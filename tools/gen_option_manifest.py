#!/usr/bin/env python3
"""Generate swimlatent_wrap/sdscripts/manifest.json from a real sd-scripts checkout.

Run it with a Python that has sd-scripts' requirements installed (it imports the scripts to build
their own argument parsers and dataset-config validator); `make manifest SD_SCRIPTS=DIR
SD_PYTHON=PY` does that. Nothing of sd-scripts is copied: the output is a list of option names,
kinds, types, defaults and choices, plus the dataset-config keys and the scheduler names that
sd-scripts accepts at that commit.

    python tools/gen_option_manifest.py --sd-scripts DIR [--commit SHA] [--out FILE]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

# (manifest name, module path inside the checkout)
SCRIPTS = [
    ("sdxl_train", "sdxl_train"),
    ("sdxl_train_network", "sdxl_train_network"),
    ("sdxl_merge_lora", "networks.sdxl_merge_lora"),
    ("tagger", "finetune.tag_images_by_wd14_tagger"),
    ("sdxl_gen_img", "sdxl_gen_img"),
]


def _type_name(action: argparse.Action) -> str:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "bool"
    kind = action.type
    if kind is None:
        return "str"
    return getattr(kind, "__name__", type(kind).__name__)


def _json_default(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_default(v) for v in value]
    return str(value)


def describe_parser(parser: argparse.ArgumentParser) -> dict:
    options = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            long_names = [s for s in action.option_strings if s.startswith("--")]
            name = long_names[0][2:]
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                kind = "flag"
            elif action.nargs in ("*", "+"):
                kind = "list"
            elif action.nargs not in (None, "?"):
                kind = f"nargs:{action.nargs}"
            else:
                kind = "valued"
        else:
            name = action.dest
            kind = "positional"
        entry = {"kind": kind, "type": _type_name(action)}
        default = action.default
        if kind == "flag":
            default = bool(default)
        entry["default"] = _json_default(default)
        if action.choices is not None:
            entry["choices"] = [_json_default(c) for c in action.choices]
        options[name] = entry
    return dict(sorted(options.items()))


def _validator_name(validator) -> str:
    """Name a voluptuous validator from config_util by what it accepts."""
    import voluptuous

    if validator in (bool, int, float, str, dict):
        return {bool: "bool", int: "int", float: "float", str: "str", dict: "table"}[validator]
    if isinstance(validator, voluptuous.Any):
        names = sorted(_validator_name(v) for v in validator.validators)
        if names == ["float", "int"]:
            return "number"
        return "any(" + ",".join(names) + ")"
    if isinstance(validator, functools.partial):
        func = getattr(validator.func, "__name__", "")
        inner = _validator_name(validator.args[0])
        if "scalar_or_twodim" in func:
            return f"{inner}_or_{inner}_pair"
        if "twodim" in func:
            return f"{inner}_pair"
    if isinstance(validator, list):
        return "list"
    if isinstance(validator, dict):
        return "table"
    return repr(validator)


def describe_dataset_config() -> dict:
    from voluptuous import Required

    from library.config_util import ConfigSanitizer

    # Both SDXL training scripts build their sanitizer this way (masked_loss off).
    sanitizer = ConfigSanitizer(True, True, False, True)

    def schema_keys(schema: dict) -> tuple[dict, list]:
        keys, required = {}, []
        for key, validator in schema.items():
            name = key.schema if hasattr(key, "schema") else key
            if isinstance(key, Required):
                required.append(name)
            if name == "subsets":
                continue
            keys[name] = _validator_name(validator)
        return dict(sorted(keys.items())), sorted(required)

    levels = {
        "general": sanitizer.general_schema,
        "dreambooth_dataset": sanitizer.db_dataset_schema,
        "finetuning_dataset": sanitizer.ft_dataset_schema,
        "dreambooth_subset": sanitizer.db_subset_schema,
        "finetuning_subset": sanitizer.ft_subset_schema,
    }
    out = {"levels": {}, "required": {}}
    for level, schema in levels.items():
        keys, required = schema_keys(schema)
        out["levels"][level] = keys
        if required:
            out["required"][level] = required
    return out


def lr_scheduler_names() -> list[str]:
    # sd-scripts' get_scheduler_fix accepts transformers' SchedulerType values, diffusers'
    # piecewise_constant, and "adafactor" (optionally "adafactor:<lr>").
    from diffusers.optimization import SchedulerType as DiffusersSchedulerType
    from transformers.optimization import SchedulerType

    names = {member.value for member in SchedulerType}
    names.add(DiffusersSchedulerType.PIECEWISE_CONSTANT.value)
    names.add("adafactor")
    return sorted(names)


def git_commit(checkout: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def build_manifest(checkout: Path, commit: str) -> dict:
    sys.path.insert(0, str(checkout))
    os.chdir(checkout)
    scripts = {}
    for name, module_path in SCRIPTS:
        # sdxl_merge_lora.py imports its siblings (lora, oft, ...) as top-level modules, as it
        # does when run as `python networks/sdxl_merge_lora.py`.
        folder = str((checkout / module_path.replace(".", "/")).parent)
        if folder not in sys.path:
            sys.path.append(folder)
        module = importlib.import_module(module_path)
        parser = module.setup_parser()
        scripts[name] = {"file": module_path.replace(".", "/") + ".py", "options": describe_parser(parser)}
    return {
        "format": 1,
        "sd_scripts_commit": commit,
        "generated_by": "tools/gen_option_manifest.py",
        "scripts": scripts,
        "dataset_config": describe_dataset_config(),
        "lr_schedulers": lr_scheduler_names(),
    }


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--sd-scripts", required=True, type=Path, help="an sd-scripts checkout")
    cli.add_argument("--commit", help="its commit, when the checkout has no .git")
    cli.add_argument("--out", type=Path, help="write here (default: stdout)")
    args = cli.parse_args()
    checkout = args.sd_scripts.resolve()
    out_path = args.out.resolve() if args.out else None
    commit = args.commit or git_commit(checkout)
    if not commit:
        print(f"error: cannot tell the commit of {checkout} (no .git); pass --commit SHA", file=sys.stderr)
        return 1
    text = json.dumps(build_manifest(checkout, commit), indent=1, sort_keys=False) + "\n"
    if out_path:
        out_path.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

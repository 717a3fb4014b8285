"""The options sd-scripts will actually see for a plan: its args.toml flattened one level, the
script's command line parsed into it (CLI wins), parser defaults for the rest (facts §1) — read
from the plan's own text, so it works before anything is written (--dry-run)."""

from __future__ import annotations

import argparse
import tomllib
from typing import Any, Sequence

from swimlatent_wrap.sdscripts.parser import build_parser
from swimlatent_wrap.stages.plan import Plan

# sd-scripts' own options, as its parser gives them to the script: an argparse Namespace, because
# sd-scripts' functions take one. The stages that read them (preflight, resume, train) name this type.
EffectiveArgs = argparse.Namespace


def effective_args(plan: Plan, extra_argv: Sequence[str] = ()) -> EffectiveArgs:
    config = tomllib.loads(plan.files["args.toml"])
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    parser = build_parser(plan.recipe.script)
    return parser.parse_args([*plan.script_argv[1:], *extra_argv], namespace=argparse.Namespace(**flat))


def dataset_document(plan: Plan) -> dict[str, Any]:
    return tomllib.loads(plan.files["dataset.toml"])


def caption_extension(plan: Plan) -> str | None:
    """The caption extension of the plan's first subset (None for a metadata-file dataset)."""
    document = dataset_document(plan)
    general = document.get("general", {})
    for dataset in document.get("datasets", []):
        for subset in dataset.get("subsets", []):
            if "metadata_file" in subset:
                return None
            for level in (subset, dataset, general):
                if "caption_extension" in level:
                    extension: str = level["caption_extension"]
                    return extension
    default: str = general.get("caption_extension", ".caption")
    return default

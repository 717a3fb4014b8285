"""The resolved recipe: what every stage reads. Built only by `recipe.load`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from swimlatent_wrap.recipe.types import Captions, Checks, Dataset, Launch, Merge, Modelspec, Sample, Sweep
from swimlatent_wrap.workdir import name_problem


@dataclass(frozen=True)
class PathRef:
    """A local checkpoint file."""

    text: str  # as written in the recipe
    path: Path  # absolute
    kind: Literal["path"] = "path"


@dataclass(frozen=True)
class HubRef:
    """A file of a Hugging Face Hub repository: hf:<owner>/<repo>/<file in repo>."""

    text: str
    repo_id: str
    filename: str
    kind: Literal["hf"] = "hf"


@dataclass(frozen=True)
class StageRef:
    """Another stage's verified output: stage:<name> (models/<name>.safetensors)."""

    text: str
    stage: str
    kind: Literal["stage"] = "stage"


# What a stage starts from; narrow it with `ref.kind == "…"` or isinstance.
ModelRef = Union[PathRef, HubRef, StageRef]


def parse_model_ref(text: str, base: Path) -> ModelRef:
    """Parse ``text`` (paths relative to ``base``); ValueError with the reason when it is not a model reference."""
    if text.startswith("stage:"):
        stage = text[len("stage:"):]
        problem = name_problem(stage) if stage else None
        if not stage or problem:
            raise ValueError(f"expected stage:<name>, e.g. stage:base, got {text!r}" + (f": {problem}" if problem else ""))
        return StageRef(text, stage)
    if text.startswith("hf:"):
        parts = text[len("hf:"):].split("/")
        if len(parts) < 3 or not all(parts) or any(part in (".", "..") for part in parts):
            raise ValueError(f"expected hf:<owner>/<repo>/<file in repo>, got {text!r}")
        return HubRef(text, "/".join(parts[:2]), "/".join(parts[2:]))
    if not text.strip():
        raise ValueError("expected a path, hf:<owner>/<repo>/<file> or stage:<name>, got an empty string")
    if "://" in text:
        raise ValueError(f"URLs are not model references; use hf:<owner>/<repo>/<file> or a local path, got {text!r}")
    return PathRef(text, (base / Path(text).expanduser()).resolve())


@dataclass(frozen=True)
class Recipe:
    path: Path  # the recipe file itself (absolute)
    chain: tuple[Path, ...]  # this file, then what it extends, outermost last
    name: str
    script: str
    model: ModelRef
    description: str
    dataset: Dataset
    captions: Captions
    launch: Launch
    sample: Sample
    sweep: Sweep
    merge: Merge
    modelspec: Modelspec
    checks: Checks
    args: dict[str, Any]  # [args], converted as sd-scripts needs them
    dataset_config: dict[str, Any]  # [dataset_config]
    _resolved: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def resolved(self) -> dict[str, Any]:
        """The whole recipe after `extends`, with defaults filled and paths absolute (JSON-able)."""
        copy: dict[str, Any] = json.loads(json.dumps(self._resolved))
        return copy

    def digest(self) -> str:
        text = json.dumps(self._resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

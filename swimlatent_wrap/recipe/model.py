"""The resolved recipe: what every stage reads. Built only by `recipe.load`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swimlatent_wrap.recipe.schema import Section


@dataclass(frozen=True)
class ModelRef:
    """What a stage starts from: a local file, a Hugging Face Hub file, or another stage's output."""

    kind: str  # "path" | "hf" | "stage"
    text: str  # as written in the recipe
    path: Path | None = None  # kind == "path": absolute
    repo_id: str | None = None  # kind == "hf"
    filename: str | None = None  # kind == "hf": path inside the repo
    stage: str | None = None  # kind == "stage"

    @classmethod
    def parse(cls, text: str, base: Path) -> "ModelRef":
        """Parse ``text``; raise ValueError with the reason when it cannot be a model reference."""
        if text.startswith("stage:"):
            stage = text[len("stage:"):]
            if not stage or "/" in stage:
                raise ValueError(f"expected stage:<name>, e.g. stage:base, got {text!r}")
            return cls("stage", text, stage=stage)
        if text.startswith("hf:"):
            parts = [p for p in text[len("hf:"):].split("/")]
            if len(parts) < 3 or not all(parts):
                raise ValueError(f"expected hf:<owner>/<repo>/<file in repo>, got {text!r}")
            return cls("hf", text, repo_id="/".join(parts[:2]), filename="/".join(parts[2:]))
        if "://" in text:
            raise ValueError(f"URLs are not model references; use hf:<owner>/<repo>/<file> or a local path, got {text!r}")
        return cls("path", text, path=(base / Path(text).expanduser()).resolve())


@dataclass(frozen=True)
class Recipe:
    path: Path  # the recipe file itself (absolute)
    chain: tuple[Path, ...]  # this file, then what it extends, outermost last
    name: str
    script: str
    model: ModelRef
    description: str
    tables: dict[str, Section]
    args: dict[str, Any]
    dataset_config: dict[str, Any]
    _resolved: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def __getattr__(self, name: str) -> Section:
        # recipe.dataset, recipe.captions, recipe.launch, recipe.sample, recipe.sweep, …
        if name.startswith("_"):
            raise AttributeError(name)
        tables = object.__getattribute__(self, "tables")
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    def resolved(self) -> dict[str, Any]:
        """The whole recipe after `extends`, with defaults filled and paths absolute (JSON-able)."""
        return json.loads(json.dumps(self._resolved))

    def digest(self) -> str:
        text = json.dumps(self._resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

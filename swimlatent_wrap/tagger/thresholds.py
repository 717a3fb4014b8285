"""The thresholds a caption is cut at: the recipe's when it sets them, else the model authors'.

[captions] general_threshold / character_threshold default to "from the model". For a model in
``KNOWN`` that means the value its authors publish on the model card (the precision = recall
point on their validation split, the "balanced" threshold); for any other model the common
defaults, general 0.35 and character 0.85 (imgutils, waifuc, sd-scripts' ``--thresh``). A value
set in the recipe or given as a flag always wins. ``resolve`` is the one place that decides;
the tag stage prints its ``line()`` first.

Which known model a spec names (``known_repo``), without a download or opening the model:

* a Hugging Face repo id (anything not on disk): that repo, compared case-insensitively;
* a folder (or the model.onnx in it) only when its place on disk says which repo it holds:
  - a Hugging Face cache snapshot, ``…/models--OWNER--NAME/snapshots/<revision>/``;
  - sd-scripts' ``--model_dir`` layout, a folder named ``OWNER_NAME`` (the repo id with "/" → "_",
    as sd-scripts stores ``SmilingWolf/wd-swinv2-tagger-v3`` in ``SmilingWolf_wd-swinv2-tagger-v3``).

Any other folder is an unknown model, whatever its name, so it gets 0.35 / 0.85: a folder's
name alone does not prove which weights it holds (set the thresholds in [captions] for it).

The model cards give one balanced threshold, over all tags; neither card gives a character
value, so a known model's character threshold stays the common 0.85.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_GENERAL = 0.35
DEFAULT_CHARACTER = 0.85


@dataclass(frozen=True)
class KnownModel:
    repo_id: str
    general: float  # the card's P=R threshold
    character: float  # the card's character threshold, or DEFAULT_CHARACTER where it gives none
    card_character: bool  # whether ``character`` comes from the card
    card: str  # where the value is published


# Declared once: the stage, the README and the tests read these.
KNOWN: tuple[KnownModel, ...] = (
    KnownModel("SmilingWolf/wd-v1-4-swinv2-tagger-v2", 0.3771, DEFAULT_CHARACTER, False,
               "model card: validation P=R at threshold 0.3771, F1 0.6854"),
    KnownModel("SmilingWolf/wd-swinv2-tagger-v3", 0.2653, DEFAULT_CHARACTER, False,
               "model card (v3 v2.0): validation P=R at threshold 0.2653, macro-F1 0.4541"),
)
_BY_REPO = {model.repo_id.lower(): model for model in KNOWN}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CACHE_REPO = re.compile(r"^models--(?P<owner>[^-][\w.-]*?)--(?P<name>[\w.-]+)$")


def known_model(repo_id: str | None) -> KnownModel | None:
    return _BY_REPO.get(repo_id.lower()) if repo_id else None


def _on_disk(spec: str, base: Path | None) -> Path | None:
    raw = Path(spec).expanduser()
    candidates = [raw] if raw.is_absolute() or base is None else [base / raw, raw]
    return next((c for c in candidates if c.exists()), None)


def folder_repo(path: Path) -> str | None:
    """The repo id a model folder's place on disk names (see the module's doc), else None."""
    folder = path.resolve()
    if folder.is_file():
        folder = folder.parent
    parts = folder.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and (cached := _CACHE_REPO.match(parts[-3])):
        return f"{cached['owner']}/{cached['name']}"
    for model in KNOWN:
        if folder.name.lower() == model.repo_id.replace("/", "_").lower():
            return model.repo_id
    return None


def known_repo(spec: str, base: Path | None = None) -> str | None:
    """The repo id ``spec`` names: itself when it is a repo id, a folder's by its layout, else None."""
    text = spec.strip()
    if not text:
        return None
    found = _on_disk(text, base)
    if found is not None:
        return folder_repo(found)
    return text if _REPO_ID.match(text) else None


@dataclass(frozen=True)
class Thresholds:
    """The effective thresholds and where each came from: "set" (recipe or flag), "card"
    (the known model's published value) or "default" (0.35 / 0.85)."""

    general: float
    character: float
    general_from: str
    character_from: str
    model: KnownModel | None  # the known model the spec names, if any
    spec: str

    def line(self) -> str:
        """The tag run's first line: the values and why, general first."""
        values = f"thresholds: general {self.general:g}, character {self.character:g}"
        why = {"general": self._why(self.general_from, "balanced value"),
               "character": self._why(self.character_from, "value")}
        if self.general_from == self.character_from:
            both = {"set": "set in [captions] or by flag",
                    "card": f"the authors' balanced values for {self.model.repo_id if self.model else self.spec}",
                    "default": why["general"].replace("the usual default", "the usual defaults")}
            return f"{values} ({both[self.general_from]})"
        return f"{values} ({'; '.join(f'{name}: {text}' for name, text in why.items())})"

    def _why(self, origin: str, what: str) -> str:
        if origin == "set":
            return "set in [captions] or by flag"
        if origin == "card" and self.model is not None:
            return f"the authors' {what} for {self.model.repo_id}"
        if self.model is not None:
            return f"its card gives none, the usual {DEFAULT_CHARACTER:g}"
        return f"the usual default; {self.spec} is not a model with published thresholds"


def resolve(spec: str, general: float | None, character: float | None, base: Path | None = None) -> Thresholds:
    """The thresholds to cut captions at: ``general``/``character`` when given (not None), else the
    known model's, else 0.35 / 0.85."""
    model = known_model(known_repo(spec, base))
    if general is not None:
        general_value, general_from = float(general), "set"
    elif model is not None:
        general_value, general_from = model.general, "card"
    else:
        general_value, general_from = DEFAULT_GENERAL, "default"
    if character is not None:
        character_value, character_from = float(character), "set"
    elif model is not None and model.card_character:
        character_value, character_from = model.character, "card"
    else:
        character_value, character_from = (model.character if model else DEFAULT_CHARACTER), "default"
    return Thresholds(general_value, character_value, general_from, character_from, model, spec.strip())

"""Run folders and run records: `runs/<stage>/<timestamp>/run.json`, from which a model is traced
back to its recipe, data, input model and sd-scripts commit.

A record is written when the run starts (status "running") and rewritten when it ends
("ok", "failed", "interrupted", "no_output", "invalid_output"); every write is atomic. A record
left at "running" means the wrapper itself was killed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from swimlatent_wrap import atomic
from swimlatent_wrap.images import images_in
from swimlatent_wrap.secrets import REDACTED, is_secret_name
from swimlatent_wrap.stages.verify import file_identity
from swimlatent_wrap.workdir import Workdir, new_run_folder

if TYPE_CHECKING:
    from swimlatent_wrap.recipe import Recipe

RECORD = "run.json"
FORMAT = 1


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def new_run_dir(workdir: Workdir, stage: str, *, create: bool = True) -> Path:
    """`runs/<stage>/<YYYYmmdd-HHMMSS>` (with -1, -2 … when taken); names sort by start time."""
    return new_run_folder(workdir.stage_runs(stage), create=create)


def run_dirs(workdir: Workdir, stage: str) -> list[Path]:
    """The stage's run folders, oldest first."""
    root = workdir.stage_runs(stage)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and (p / RECORD).is_file()), key=lambda p: _sort_key(p.name))


def _sort_key(name: str) -> tuple[str, str, int]:
    # "20260101-120000" then "20260101-120000-1", "-2", … "-10" (numeric, not text, order)
    parts = name.split("-")
    return (parts[0], parts[1] if len(parts) > 1 else "", int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0)


def read_record(run_dir: Path) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads((run_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    atomic.write_text(run_dir / RECORD, json.dumps(record, indent=1, ensure_ascii=False, sort_keys=False) + "\n")


def without_secrets(value: Any) -> Any:
    """A copy with the values of secret-looking keys replaced (a recipe may carry an sd-scripts
    option such as huggingface_token; it never reaches a record)."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_name(str(k)) and v not in (None, "", False) else without_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------
# Dataset identity


def dataset_digest(folder: Path, caption_extension: str | None) -> dict[str, Any]:
    """What the stage trains on, cheaply: every image's name and size, every caption's bytes.

    Danbooru images are named by their md5, so name + size identify them; hashing every image
    (tens of GB for the base set) on each run would cost minutes. The collector's
    manifest.sqlite, when there is one, is hashed as well.
    """
    digest = hashlib.sha256()
    images = images_in(folder)
    captioned = 0
    for image in images:
        digest.update(f"{image.name}\t{image.stat().st_size}\t".encode())
        if caption_extension:
            caption = image.with_name(image.stem + caption_extension)
            if caption.is_file():
                data = caption.read_bytes()
                captioned += bool(data.strip())
                digest.update(hashlib.sha256(data).hexdigest().encode())
        digest.update(b"\n")
    manifest = folder.parent / "manifest.sqlite"
    manifest_sha = None
    if manifest.is_file():
        from swimlatent_wrap.stages.verify import sha256_file

        manifest_sha = sha256_file(manifest)
    return {
        "image_dir": str(folder),
        "images": len(images),
        "captioned": captioned,
        "caption_extension": caption_extension,
        "files_sha256": digest.hexdigest(),
        "manifest_sqlite_sha256": manifest_sha,
    }


def digest_of(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys; paths and the like as str)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


# ------------------------------------------------------------------------------------------
# What a training run starts from: its inputs digest (run.json "inputs_digest")


def train_inputs_digest(recipe: Recipe, workdir: Workdir, sd_scripts: Path) -> str:
    """One digest of everything a training run of ``recipe`` starts from: the resolved recipe, the
    dataset (names, sizes, caption bytes), the input model and the sd-scripts commit. `train`
    records it in run.json; `run` skips (or resumes) a stage whose last run recorded the same one.
    The one function both call, so a `train` followed by a `run` with nothing changed trains once."""
    from swimlatent_wrap.stages.plan import image_dir
    from swimlatent_wrap.stages.preflight import sd_scripts_commit

    dataset = dataset_digest(image_dir(recipe, workdir), recipe_caption_extension(recipe))
    return digest_of({"recipe": recipe.digest(), "dataset": dataset["files_sha256"], "model": model_identity(recipe, workdir),
                      "sd_scripts": sd_scripts_commit(sd_scripts)})


def recipe_caption_extension(recipe: Recipe) -> str:
    """The captions' extension as the recipe's [dataset_config] gives it (".txt" when it does not)."""
    extension: str = recipe.dataset_config.get("caption_extension", ".txt")
    return extension


def model_identity(recipe: Recipe, workdir: Workdir) -> Any:
    """The input model as the digest sees it: for stage: refs the sha256 its placing run recorded;
    for a hub file the sha256 it was verified against; else the file's size and mtime (a 7 GB
    checkpoint is not re-hashed on every run)."""
    ref = recipe.model
    if ref.kind == "stage":
        path = workdir.model_path(ref.stage)
        placed = placing_run(workdir, ref.stage, path)
        if placed is not None:
            return {"stage": ref.stage, "sha256": placed[1]["output"]["sha256"]}
        return {"stage": ref.stage, "file": _identity(path)}
    if ref.kind == "hf":
        from swimlatent_wrap.stages.hub import verified_sha256

        return {"hf": ref.text, "sha256": verified_sha256(workdir.hub_file(ref.repo_id, ref.filename))}
    return {"path": str(ref.path), "file": _identity(ref.path)}


def _identity(path: Path) -> Any:
    return file_identity(path) if path.is_file() else None


# ------------------------------------------------------------------------------------------
# Looking runs up


def records(workdir: Workdir, stage: str) -> Iterable[tuple[Path, dict[str, Any]]]:
    """(run folder, record) of the stage, newest first."""
    for run_dir in reversed(run_dirs(workdir, stage)):
        record = read_record(run_dir)
        if record is not None:
            yield run_dir, record


def placing_run(workdir: Workdir, stage: str, model: Path) -> tuple[Path, dict[str, Any]] | None:
    """The run whose verified output is the file now at ``model`` (same size and mtime)."""
    if not model.is_file():
        return None
    identity = file_identity(model)
    for run_dir, record in records(workdir, stage):
        output = record.get("output") or {}
        if record.get("status") == "ok" and output.get("placed_identity") == identity:
            return run_dir, record
    return None

"""The workdir layout, in one place (DESIGN.md "Workdir layout").

    datasets/<name>/images/        images (+ <stem>.txt captions beside them)
    datasets/<name>/manifest.sqlite
    datasets/<name>/report/        dataset report (HTML)
    runs/<stage>/<timestamp>/      argv.json, args.toml, dataset.toml, command.sh, log, run.json
    models/<stage>.safetensors     only complete, verified outputs
    models/hub/<owner>/<repo>/     files fetched from the Hugging Face Hub (hf: model references)
    cache/tokenizers/              sd-scripts --tokenizer_cache_dir (offline after the first run)
    sweeps/<stage>/                LoRA ratio sweeps
    release/                       stamped release files
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path

# A stage or dataset name becomes one folder or file name under the workdir, on every system.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Names the wrapper uses itself, so no stage may be called them.
MERGED_STAGE = "merged"  # models/merged.safetensors: the merge's verified output
MERGE_RUNS = "merge"  # runs/merge/<time>/: the merges' logs and records
RESERVED_STAGES = {MERGED_STAGE: "models/merged.safetensors is the merge's output",
                   MERGE_RUNS: "runs/merge/ holds the merges' logs"}


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a stage or dataset (None when it can): one safe path component."""
    if not _SAFE_NAME.match(name) or name.endswith(".") or ".." in name:
        return (f"{name!r} is not a plain name: use letters, digits, '.', '_' and '-', starting with a letter "
                "or digit, at most 100 characters (it becomes a folder name under the workdir)")
    return None


def new_run_folder(parent: Path, *, create: bool = True) -> Path:
    """`<parent>/<YYYYmmdd-HHMMSS>` (with -1, -2 … when taken): every run's folder; names sort by start time."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate, n = parent / stamp, 0
    while candidate.exists():
        n += 1
        candidate = parent / f"{stamp}-{n}"
    if create:
        candidate.mkdir(parents=True)
    return candidate


class OutsideWorkdir(ValueError):
    """A path the wrapper would write lies outside the workdir: a bug or a bad name, never written."""


@dataclass(frozen=True)
class Workdir:
    root: Path

    @staticmethod
    def _component(name: str) -> str:
        """``name`` itself, once it is proven one safe path component (so the path stays under root)."""
        problem = name_problem(name)
        if problem:
            raise OutsideWorkdir(problem)
        return name

    def dataset_dir(self, name: str) -> Path:
        return self.root / "datasets" / self._component(name)

    def images_dir(self, name: str) -> Path:
        return self.dataset_dir(name) / "images"

    def dataset_manifest(self, name: str) -> Path:
        return self.dataset_dir(name) / "manifest.sqlite"

    def stage_runs(self, stage: str) -> Path:
        return self.root / "runs" / self._component(stage)

    def model_path(self, stage: str) -> Path:
        return self.root / "models" / f"{self._component(stage)}.safetensors"

    def hub_file(self, repo_id: str, filename: str) -> Path:
        parts = [*repo_id.split("/"), *filename.split("/")]
        if any(part in ("", ".", "..") for part in parts):
            raise OutsideWorkdir(f"hf:{repo_id}/{filename}: a Hub file path with an empty, '.' or '..' part")
        return self.root / "models" / "hub" / "/".join(parts)

    def tokenizer_cache(self) -> Path:
        return self.root / "cache" / "tokenizers"

    def sweep_dir(self, stage: str) -> Path:
        return self.root / "sweeps" / self._component(stage)

    def release_dir(self) -> Path:
        return self.root / "release"

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

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workdir:
    root: Path

    def dataset_dir(self, name: str) -> Path:
        return self.root / "datasets" / name

    def images_dir(self, name: str) -> Path:
        return self.dataset_dir(name) / "images"

    def dataset_manifest(self, name: str) -> Path:
        return self.dataset_dir(name) / "manifest.sqlite"

    def stage_runs(self, stage: str) -> Path:
        return self.root / "runs" / stage

    def model_path(self, stage: str) -> Path:
        return self.root / "models" / f"{stage}.safetensors"

    def hub_file(self, repo_id: str, filename: str) -> Path:
        return self.root / "models" / "hub" / repo_id / filename

    def tokenizer_cache(self) -> Path:
        return self.root / "cache" / "tokenizers"

    def sweep_dir(self, stage: str) -> Path:
        return self.root / "sweeps" / stage

    def release_dir(self) -> Path:
        return self.root / "release"

"""The recipe's tables as frozen dataclasses. Generated from the `Field` declarations in
`recipe/tables/` by `python -m swimlatent_wrap.recipe.typegen`; do not edit by hand."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class TableValues:
    """A validated table: every declared key present, defaults filled, paths absolute."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DatasetDanbooruSplits(TableValues):
    """[dataset.danbooru.splits] (an array of tables): One [[dataset.danbooru.splits]] per rating group; shares add up to 1."""

    ratings: str
    share: float


@dataclass(frozen=True)
class DatasetDanbooru(TableValues):
    """[dataset.danbooru]: How `swimlatent collect` queries Danbooru for this dataset."""

    count: int
    api_root: str = 'https://danbooru.donmai.us'
    max_age: str = '4y'
    order: Literal["score", "favcount"] = 'score'
    tags: tuple[str, ...] = ()
    artists: Path | None = None
    artist_mix: Literal["score", "even"] = 'score'
    blacklist: tuple[str, ...] = ()
    min_width: int = 0
    min_height: int = 0
    min_pixels: int = 0
    file_types: tuple[str, ...] = ('jpg', 'png', 'webp')
    requests_per_second: float = 1.0
    concurrency: int = 2
    timeout: float = 30.0
    retry_wait: float = 1.0
    max_tries: int = 6
    rate_limit_wait: float = 60.0
    rate_limit_budget: float = 900.0
    page_limit: int = 1000
    tag_limit: int | None = None
    window_days: int = 365
    keep_deleted: bool = False
    splits: tuple[DatasetDanbooruSplits, ...] = ()


@dataclass(frozen=True)
class Dataset(TableValues):
    """[dataset]: The images this stage trains on. Captions are `<stem>.txt` beside each image."""

    name: str
    source: Literal["danbooru", "folder", "selection"] = 'danbooru'
    path: Path | None = None
    from_dataset: str | None = None
    selection: Path | None = None
    metadata_file: Path | None = None
    num_repeats: int = 1
    select_count: int = 100
    near_duplicate_bits: int = 6
    danbooru: DatasetDanbooru | None = None


@dataclass(frozen=True)
class Captions(TableValues):
    """[captions]: WD14 tagging. The prefix tags head every caption and are kept in place by keep_tokens."""

    model: str = 'SmilingWolf/wd-v1-4-swinv2-tagger-v2'
    prefix: tuple[str, ...] = ()
    general_threshold: float | None = None
    character_threshold: float | None = None
    blacklist: tuple[str, ...] = ()
    rating_tag: bool = False
    batch_size: int = 8
    resize: Literal["sd-scripts", "bicubic"] = 'sd-scripts'


@dataclass(frozen=True)
class Launch(TableValues):
    """[launch]: accelerate launch settings. DeepSpeed is configured with sd-scripts' own options in [args]."""

    python: str = ''
    num_processes: int = 1
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str = ''
    main_process_port: int = 29500
    gpu_ids: str = ''
    num_cpu_threads_per_process: int = 1


@dataclass(frozen=True)
class Sample(TableValues):
    """[sample]: Sampling during training. Every prompt line is written with explicit size, steps, scale and seed (sd-scripts would otherwise use 512×512)."""

    prompts: Path | None = None
    negative_prompt: str = ''
    width: int = 1024
    height: int = 1024
    steps: int = 28
    scale: float = 7.0
    seed: int = 1234
    sampler: str = 'euler_a'
    every_n_epochs: int = 1
    every_n_steps: int = 0
    at_first: bool = False


@dataclass(frozen=True)
class Sweep(TableValues):
    """[sweep]: `swimlatent sweep`: images at each LoRA ratio, same prompts and seeds, in one grid."""

    ratios: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    prompts: Path | None = None
    seeds: tuple[int, ...] = (1234,)
    negative_prompt: str = ''
    width: int = 1024
    height: int = 1024
    steps: int = 28
    scale: float = 7.0
    sampler: str = 'euler_a'


@dataclass(frozen=True)
class Merge(TableValues):
    """[merge]: `swimlatent merge`: the ratio picked from the sweep, and the precision of the merged file."""

    ratio: float = 1.0
    precision: Literal["float", "fp16", "bf16"] = 'float'
    save_precision: Literal["float", "fp16", "bf16"] = 'fp16'


@dataclass(frozen=True)
class Modelspec(TableValues):
    """[modelspec]: `swimlatent stamp`: ModelSpec keys (without the `modelspec.` prefix). `date` defaults to today."""

    title: str = ''
    author: str = ''
    description: str = ''
    license: str = ''
    date: str = ''
    architecture: str = 'stable-diffusion-xl-v1-base'
    implementation: str = 'sgm'
    tags: tuple[str, ...] = ()
    usage_hint: str = ''
    trigger_phrase: str = ''
    thumbnail: Path | None = None
    strip_paths: bool = True


@dataclass(frozen=True)
class Checks(TableValues):
    """[checks]: Accept, deliberately, a setting `swimlatent validate` refuses because it would train without effect."""

    allow_rounded_updates: bool = False


# table name (dotted for subtables) → its class, for the loader
TABLE_TYPES: dict[str, type[TableValues]] = {
    "dataset": Dataset,
    "dataset.danbooru": DatasetDanbooru,
    "dataset.danbooru.splits": DatasetDanbooruSplits,
    "captions": Captions,
    "launch": Launch,
    "sample": Sample,
    "sweep": Sweep,
    "merge": Merge,
    "modelspec": Modelspec,
    "checks": Checks,
}

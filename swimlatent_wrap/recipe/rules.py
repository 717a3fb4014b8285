"""Rules across a recipe's tables that depend only on the recipe and the files it names.

Each is checked by `load_recipe`, so `swimlatent validate` reports it with every other problem;
the stages that act on these tables (train, sweep, merge, stamp, collect) keep only the checks
about the machine and the data. A finding is ``(table, key, message, warning)``: a warning is
printed by `validate` but does not fail it (an `artists.txt` still waiting for its artists).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from swimlatent_wrap.danbooru.query import EMPTY_ARTISTS, PlanError, artists_problem, plan, read_artists
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.prompts import PromptFileError, read_prompts
from swimlatent_wrap.modelspec.spec import publish_problem
from swimlatent_wrap.recipe.types import Captions, Dataset, DatasetDanbooru, Modelspec, Sample, Sweep
from swimlatent_wrap.sdscripts.manifest import Manifest
from swimlatent_wrap.selection_file import selection_problem
from swimlatent_wrap.workdir import RESERVED_STAGES, name_problem

GEN_SCRIPT = "sdxl_gen_img"


@dataclass(frozen=True)
class Finding:
    table: str  # "" for a top-level key
    key: str
    message: str
    warning: bool = False


def _choices(manifest: Manifest, script: str, option: str) -> list[str]:
    return [c for c in manifest.script(script).options[option].choices or () if c is not None]


def name_findings(name: str | None) -> list[Finding]:
    if name is None:
        return []
    if (problem := name_problem(name)) is not None:
        return [Finding("", "name", problem)]
    if name in RESERVED_STAGES:
        return [Finding("", "name", f"{name!r} is reserved: {RESERVED_STAGES[name]}")]
    return []


def prompt_findings(table: str, path: Path | None) -> list[Finding]:
    if path is None:
        return []
    try:
        read_prompts(path)
    except PromptFileError as error:
        return [Finding(table, "prompts", f"{path}: {error}")]
    return []


def sample_findings(manifest: Manifest, script: str, sample: Sample) -> list[Finding]:
    findings = prompt_findings("sample", sample.prompts)
    choices = _choices(manifest, script, "sample_sampler")
    if sample.sampler not in choices:
        findings.append(Finding("sample", "sampler", f"expected one of {', '.join(choices)}, got {sample.sampler!r}"))
    return findings


def sweep_findings(manifest: Manifest, sweep: Sweep, sample: Sample, *, releases: bool) -> list[Finding]:
    """[sweep]: its sampler is sdxl_gen_img.py's; a recipe whose `run` sweeps must have prompts for it."""
    findings: list[Finding] = []
    choices = _choices(manifest, GEN_SCRIPT, "sampler")
    if sweep.sampler not in choices:
        findings.append(Finding("sweep", "sampler", f"expected one of {', '.join(choices)} (sdxl_gen_img.py), got {sweep.sampler!r}"))
    if sweep.prompts is not None:
        findings += prompt_findings("sweep", sweep.prompts)
    elif releases and sample.prompts is None:
        findings.append(Finding("sweep", "prompts", "a LoRA from stage:<name> is swept after training and needs prompts: "
                                "set [sweep] prompts (or [sample] prompts)"))
    return findings


def dataset_findings(dataset: Dataset, *, plan_searches: bool = True) -> list[Finding]:
    """[dataset]'s source and its files; ``plan_searches``: also plan the Danbooru searches (only
    when every [dataset.danbooru] value is valid, so a refused value is not reported twice)."""
    findings: list[Finding] = []
    source = dataset.source
    needs = {"folder": ("path",), "selection": ("from_dataset", "selection"), "danbooru": ("danbooru",)}.get(source, ())
    for key in needs:
        if getattr(dataset, key) is None:
            label = "[dataset.danbooru] table" if key == "danbooru" else f"`{key}`"
            findings.append(Finding("dataset", key, f"source = {source!r} needs {label}"))
    if source == "selection" and dataset.from_dataset is not None and dataset.from_dataset == dataset.name:
        findings.append(Finding("dataset", "from_dataset", f"is this dataset's own name ({dataset.name!r}); name the "
                                "dataset the selection picks from"))
    if source == "selection" and dataset.selection is not None and Path(dataset.selection).is_file():
        if (problem := selection_problem(Path(dataset.selection))) is not None:
            findings.append(Finding("dataset", "selection", f"{dataset.selection}: {problem}"))
    danbooru = dataset.danbooru
    if source == "danbooru" and danbooru is not None:
        findings += danbooru_findings(danbooru, plan_searches=plan_searches)
    return findings


def danbooru_findings(danbooru: DatasetDanbooru, *, plan_searches: bool) -> list[Finding]:
    """The artists file, and the searches `collect` will make (planned exactly as collect plans them)."""
    artists = None
    if danbooru.artists is not None:
        problem = artists_problem(Path(danbooru.artists))
        if problem is not None:
            return [Finding("dataset.danbooru", "artists", f"{danbooru.artists}: {problem}", warning=problem == EMPTY_ARTISTS)]
        artists = read_artists(Path(danbooru.artists))
    if not plan_searches:
        return []
    try:
        plan(danbooru, danbooru.count, artists)
    except PlanError as error:
        if danbooru.tag_limit is not None:
            return [Finding("dataset.danbooru", error.key, str(error))]
        # tag_limit unset: collect reads the account's limit (Gold 6, Platinum and up unlimited)
        return [Finding("dataset.danbooru", error.key, f"{error} — it fits an account allowing more tags: with "
                        "DANBOORU_LOGIN set, collect reads the account's limit; set tag_limit to say it here", warning=True)]
    return []


def modelspec_findings(modelspec: Modelspec, captions: Captions) -> list[Finding]:
    """What `stamp` would publish beyond [modelspec]'s own checked values: the caption prefix (the
    default usage_hint and trigger_phrase) and the thumbnail."""
    findings: list[Finding] = []
    if captions.prefix and not (modelspec.usage_hint and modelspec.trigger_phrase):
        if (problem := publish_problem(", ".join(captions.prefix))) is not None:
            findings.append(Finding("captions", "prefix", f"{problem} (as the default usage_hint and trigger_phrase); "
                                    "set [modelspec] usage_hint and trigger_phrase, or change the prefix"))
    return findings + _thumbnail_findings(modelspec)


def _thumbnail_findings(modelspec: Modelspec) -> list[Finding]:
    if modelspec.thumbnail is None:
        return []
    from swimlatent_wrap.modelspec.spec import thumbnail_data_url

    try:
        thumbnail_data_url(Path(modelspec.thumbnail))
    except ImportError:  # the core install has no Pillow; stamp (the release extra) has
        return [Finding("modelspec", "thumbnail", "not checked: Pillow is not installed (pip install 'swimlatent[release]')",
                        warning=True)]
    except UserError as error:
        return [Finding("modelspec", "thumbnail", "; ".join(error.lines))]
    return []

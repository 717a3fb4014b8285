"""Stamp a model with ModelSpec metadata from a recipe and `--set` values: `swimlatent stamp` and the
release step of `swimlatent run` both call `stamp_model`."""

from __future__ import annotations

from pathlib import Path

from swimlatent_wrap.modelspec.spec import StampResult, resolution_text, stamp_file, thumbnail_data_url
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.workdir import Workdir


def recipe_values(recipe: Recipe) -> dict[str, str]:
    """The recipe's [modelspec] values that are set, as ModelSpec strings (thumbnail: a data URL);
    usage_hint and trigger_phrase default to the caption prefix, resolution to the dataset's. Nothing
    here can hold a path or a secret: `validate` refuses them ([modelspec] and the prefix alike)."""
    table = recipe.modelspec
    values: dict[str, str] = {key: value for key, value in table.as_dict().items() if isinstance(value, str) and value}
    if table.tags:
        values["tags"] = ",".join(table.tags)
    prefix = ", ".join(recipe.captions.prefix)
    if prefix:
        values.setdefault("usage_hint", prefix)
        values.setdefault("trigger_phrase", prefix)
    resolution = recipe.dataset_config.get("resolution")
    if resolution is not None:
        values.setdefault("resolution", resolution_text(resolution))
    if table.thumbnail is not None:
        values["thumbnail"] = thumbnail_data_url(table.thumbnail)
    return values


def stamp_model(model: Path, *, out: Path | None, recipe: Recipe | None, assignments: dict[str, str]) -> StampResult:
    """Stamp ``model`` (or a copy at ``out``): the recipe's values, then ``assignments`` (`--set`) over them."""
    values = recipe_values(recipe) if recipe is not None else None
    strip_paths = recipe.modelspec.strip_paths if recipe is not None else True
    return stamp_file(model, out=out, recipe=values, assignments=assignments, strip_paths=strip_paths)


def release_file(recipe: Recipe, workdir: Workdir) -> Path:
    """release/<title>.safetensors: the [modelspec] title (else the stage name) as a safe file name."""
    title = recipe.modelspec.title or recipe.name
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in title).strip("._") or recipe.name
    return workdir.release_dir() / f"{safe}.safetensors"

"""The typed recipe: `recipe/types.py` is generated from the table declarations and current, and
the loader fills it (frozen dataclasses, tuples for arrays, the model reference as a union)."""

from __future__ import annotations

import dataclasses

import pytest

from swimlatent_wrap.recipe import HubRef, StageRef, load_recipe
from swimlatent_wrap.recipe.tables import WRAPPER_TABLES
from swimlatent_wrap.recipe.typegen import TYPES_PATH, source
from swimlatent_wrap.recipe.types import TABLE_TYPES, Dataset, DatasetDanbooru
from tests.helpers import REPO

RECIPES = REPO / "recipes" / "swim-in-latent"


def test_types_module_is_generated_from_the_declarations():
    assert TYPES_PATH.read_text(encoding="utf-8") == source(), "run: python -m swimlatent_wrap.recipe.typegen"


def test_every_declared_key_is_a_field_of_its_table_class():
    for name, table in WRAPPER_TABLES.items():
        cls = TABLE_TYPES[name]
        assert {f.name for f in dataclasses.fields(cls)} == set(table.keys())


def test_loaded_tables_are_frozen_and_typed():
    base = load_recipe(RECIPES / "base.toml")
    assert isinstance(base.dataset, Dataset) and isinstance(base.dataset.danbooru, DatasetDanbooru)
    assert base.dataset.danbooru.count == 30000
    assert base.captions.prefix == ("new", "newest", "masterpiece", "best quality")
    assert [s.share for s in base.dataset.danbooru.splits] == [0.5, 0.5]
    assert isinstance(base.model, HubRef) and base.model.repo_id == "stabilityai/stable-diffusion-xl-base-1.0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.dataset.name = "other"  # type: ignore[misc]
    lora = load_recipe(RECIPES / "lora.toml")
    assert lora.model == StageRef("stage:ft", "ft")
    assert lora.resolved()["sweep"]["ratios"] == [0.0, 0.25, 0.5, 0.75, 1.0]  # JSON arrays in the plan

"""Recipes: TOML with `extends`, validated as a whole, resolved into a typed `Recipe`.

The names below are loaded on first use, so `swimlatent --help` (whose `tag` flags come from the
[captions] declarations in recipe/tables/) does not pay for the loader, its rules and their imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swimlatent_wrap.recipe.load import Problem as Problem
    from swimlatent_wrap.recipe.load import RecipeError as RecipeError
    from swimlatent_wrap.recipe.load import check_recipe as check_recipe
    from swimlatent_wrap.recipe.load import load_recipe as load_recipe
    from swimlatent_wrap.recipe.model import HubRef as HubRef
    from swimlatent_wrap.recipe.model import ModelRef as ModelRef
    from swimlatent_wrap.recipe.model import PathRef as PathRef
    from swimlatent_wrap.recipe.model import Recipe as Recipe
    from swimlatent_wrap.recipe.model import StageRef as StageRef

_HOME = {"Problem": "load", "RecipeError": "load", "check_recipe": "load", "load_recipe": "load",
         "HubRef": "model", "ModelRef": "model", "PathRef": "model", "Recipe": "model", "StageRef": "model"}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)

"""Recipes: TOML with `extends`, validated as a whole, resolved into a typed `Recipe`."""

from swimlatent_wrap.recipe.load import Problem, RecipeError, check_recipe, load_recipe
from swimlatent_wrap.recipe.model import HubRef, ModelRef, PathRef, Recipe, StageRef

__all__ = ["HubRef", "ModelRef", "PathRef", "Problem", "Recipe", "RecipeError", "StageRef", "check_recipe", "load_recipe"]

"""Recipes: TOML with `extends`, validated as a whole, resolved into a typed `Recipe`."""

from swimlatent_wrap.recipe.load import Problem, RecipeError, check_recipe, load_recipe
from swimlatent_wrap.recipe.model import ModelRef, Recipe

__all__ = ["ModelRef", "Problem", "Recipe", "RecipeError", "check_recipe", "load_recipe"]

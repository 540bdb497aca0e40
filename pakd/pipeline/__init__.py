"""Recipes and the stage runner behind ``pakd compress``."""

from .recipe import QuantConfig, Recipe, RecipeError, StageConfig, find_recipe, load_recipe, parse_recipe
from .runner import CompressJob, compress, compress_job, resume_job

__all__ = [
    "CompressJob",
    "QuantConfig",
    "Recipe",
    "RecipeError",
    "StageConfig",
    "compress",
    "compress_job",
    "find_recipe",
    "load_recipe",
    "parse_recipe",
    "resume_job",
]

"""swimlatent: a recipe-driven wrapper around kohya-ss/sd-scripts for SDXL fine-tunes."""

__version__ = "0.1.0"

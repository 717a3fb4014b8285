"""Stages compose the recipe, the sd-scripts interface, the runner and the data tools."""

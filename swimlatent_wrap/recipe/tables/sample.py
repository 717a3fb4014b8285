"""[sample]: images sd-scripts generates during training, from the recipe's prompts."""

from swimlatent_wrap.recipe.schema import BOOL, FLOAT, INT, STR, Field, PathKind, Table


def _at_least(n: int):
    return lambda v: None if v >= n else f"must be {n} or more, got {v}"


def _multiple_of_8(value: int) -> str | None:
    return None if value >= 64 and value % 8 == 0 else f"must be a multiple of 8, at least 64, got {value}"


TABLE = Table(
    name="sample",
    help="Sampling during training. Every prompt line is written with explicit size, steps, scale and seed "
    "(sd-scripts would otherwise use 512×512).",
    fields=[
        Field("prompts", PathKind(), None, "text file, one prompt per line (# comments and blank lines skipped)"),
        Field("negative_prompt", STR, "", "negative prompt for every line"),
        Field("width", INT, 1024, "image width", check=_multiple_of_8),
        Field("height", INT, 1024, "image height", check=_multiple_of_8),
        Field("steps", INT, 28, "sampling steps", check=_at_least(1)),
        Field("scale", FLOAT, 7.0, "CFG scale"),
        Field("seed", INT, 1234, "seed of the first prompt; each next prompt uses seed + line index"),
        Field("sampler", STR, "euler_a", "sd-scripts sample_sampler (checked against its choices)"),
        Field("every_n_epochs", INT, 1, "sample after every N epochs (0 = never)", check=_at_least(0)),
        Field("every_n_steps", INT, 0, "sample after every N steps (0 = never)", check=_at_least(0)),
        Field("at_first", BOOL, False, "also sample before training starts"),
    ],
)

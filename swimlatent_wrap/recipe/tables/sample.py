"""[sample]: images sd-scripts generates during training, from the recipe's prompts."""

from swimlatent_wrap.recipe.schema import BOOL, FLOAT, INT, STR, Field, PathKind, Table
from swimlatent_wrap.values import NON_NEGATIVE, POSITIVE, Domain

# sd-scripts and sdxl_gen_img.py round sizes to multiples of 8 (the VAE's factor)
IMAGE_SIDE = Domain(64, 8192, why="pixels per side, a multiple of 8")
SEED = Domain(0, 2**32 - 1)
STEPS = Domain(1, 1000)


def image_side(value: int) -> str | None:
    return IMAGE_SIDE(value) or (None if value % 8 == 0 else f"must be a multiple of 8, got {value}")


TABLE = Table(
    name="sample",
    help="Sampling during training. Every prompt line is written with explicit size, steps, scale and seed "
    "(sd-scripts would otherwise use 512×512).",
    fields=[
        Field("prompts", PathKind(), None, "text file, one prompt per line (# comments and blank lines skipped)"),
        Field("negative_prompt", STR, "", "negative prompt for every line"),
        Field("width", INT, 1024, "image width", check=image_side),
        Field("height", INT, 1024, "image height", check=image_side),
        Field("steps", INT, 28, "sampling steps", check=STEPS),
        Field("scale", FLOAT, 7.0, "CFG scale", check=POSITIVE),
        Field("seed", INT, 1234, "seed of the first prompt; each next prompt uses seed + line index", check=SEED),
        Field("sampler", STR, "euler_a", "sd-scripts sample_sampler (checked against its choices)"),
        Field("every_n_epochs", INT, 1, "sample after every N epochs (0 = never)", check=NON_NEGATIVE),
        Field("every_n_steps", INT, 0, "sample after every N steps (0 = never)", check=NON_NEGATIVE),
        Field("at_first", BOOL, False, "also sample before training starts"),
    ],
)

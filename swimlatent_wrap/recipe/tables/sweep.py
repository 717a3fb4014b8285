"""[sweep]: the LoRA ratio sweep that lets the user pick the merge ratio by eye."""

from swimlatent_wrap.recipe.schema import FLOAT, INT, STR, Field, ListOf, PathKind, Table

TABLE = Table(
    name="sweep",
    help="`swimlatent sweep`: images at each LoRA ratio, same prompts and seeds, in one grid.",
    fields=[
        Field("ratios", ListOf(FLOAT), [0.0, 0.25, 0.5, 0.75, 1.0], "LoRA multipliers, one grid column each"),
        Field("prompts", PathKind(), None, "text file, one prompt per line (default: [sample] prompts)"),
        Field("seeds", ListOf(INT), [1234], "seeds; each prompt is drawn once per seed"),
        Field("negative_prompt", STR, "", "negative prompt for every image"),
        Field("width", INT, 1024, "image width"),
        Field("height", INT, 1024, "image height"),
        Field("steps", INT, 28, "sampling steps"),
        Field("scale", FLOAT, 7.0, "CFG scale"),
        Field("sampler", STR, "euler_a", "sampler"),
    ],
)

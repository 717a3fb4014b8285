"""[sweep]: the LoRA ratio sweep that lets the user pick the merge ratio by eye."""

from typing import Any, Callable

from swimlatent_wrap.recipe.schema import FLOAT, INT, STR, Field, ListOf, PathKind, Table
from swimlatent_wrap.recipe.tables.sample import SEED, STEPS, image_side
from swimlatent_wrap.values import POSITIVE


def _not_empty(what: str) -> Callable[[list[Any]], str | None]:
    return lambda values: None if values else f"list at least one {what}"


def _seeds(values: list[int]) -> str | None:
    return _not_empty("seed")(values) or SEED(values)


def _check(values: dict[str, Any]) -> list[tuple[str, str]]:
    ratios = values.get("ratios") or []
    repeated = sorted({r for r in ratios if ratios.count(r) > 1})
    return [("ratios", f"{repeated[0]:g} is listed twice; each ratio is one column of the grid")] if repeated else []


TABLE = Table(
    name="sweep",
    help="`swimlatent sweep`: images at each LoRA ratio, same prompts and seeds, in one grid.",
    fields=[
        Field("ratios", ListOf(FLOAT), [0.0, 0.25, 0.5, 0.75, 1.0], "LoRA multipliers, one grid column each",
              check=_not_empty("LoRA ratio")),
        Field("prompts", PathKind(), None, "text file, one prompt per line (default: [sample] prompts)"),
        Field("seeds", ListOf(INT), [1234], "seeds; each prompt is drawn once per seed", check=_seeds),
        Field("negative_prompt", STR, "", "negative prompt for every image"),
        Field("width", INT, 1024, "image width", check=image_side),
        Field("height", INT, 1024, "image height", check=image_side),
        Field("steps", INT, 28, "sampling steps", check=STEPS),
        Field("scale", FLOAT, 7.0, "CFG scale", check=POSITIVE),
        Field("sampler", STR, "euler_a", "sampler (checked against sdxl_gen_img.py's choices)"),
    ],
    check=_check,
)

"""[merge]: merging the LoRA into the model it was trained on (sdxl_merge_lora.py)."""

from swimlatent_wrap.recipe.schema import FLOAT, Choice, Field, Table


def _ratio(value: float) -> str | None:
    return "is 0, which merges nothing; set it from the sweep grid" if value == 0 else None


TABLE = Table(
    name="merge",
    help="`swimlatent merge`: the ratio picked from the sweep, and the precision of the merged file.",
    fields=[
        Field("ratio", FLOAT, 1.0, "LoRA multiplier for the merge (pick it from the sweep grid); any finite number but 0",
              check=_ratio),
        Field("precision", Choice(("float", "fp16", "bf16")), "float", "dtype the merge is computed in"),
        Field("save_precision", Choice(("float", "fp16", "bf16")), "fp16", "dtype of the merged file"),
    ],
)

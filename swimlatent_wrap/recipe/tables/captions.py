"""[captions]: how `swimlatent tag` captions the dataset (WD14 tagger)."""

from swimlatent_wrap.recipe.schema import BOOL, FLOAT, INT, STR, Field, ListOf, Table
from swimlatent_wrap.values import AT_LEAST_1, PROBABILITY


def tags_problem(tags: list[str] | tuple[str, ...]) -> str | None:
    """Tags written into a caption: each one line of text without the ", " that separates tags
    (sd-scripts reads the caption's first line only, and keep_tokens counts comma-separated tags)."""
    for tag in tags:
        if not tag.strip():
            return "an empty tag; remove it"
        if "\n" in tag or "\r" in tag:
            return f"{tag!r} holds a line break: sd-scripts reads only a caption's first line"
        if "," in tag:
            return f"{tag!r} holds a comma, which separates tags: write each tag as its own item"
    return None

TABLE = Table(
    name="captions",
    help="WD14 tagging. The prefix tags head every caption and are kept in place by keep_tokens.",
    fields=[
        Field("model", STR, "SmilingWolf/wd-v1-4-swinv2-tagger-v2", "Hugging Face repo id, or a folder with model.onnx + selected_tags.csv"),
        Field("prefix", ListOf(STR), [], "tags written first in every caption, in this order", check=tags_problem),
        Field("general_threshold", FLOAT, 0.35, "general tags at or above this probability", check=PROBABILITY),
        Field("character_threshold", FLOAT, 0.85, "character tags at or above this probability", check=PROBABILITY),
        Field("blacklist", ListOf(STR), [], "tags never written", check=tags_problem),
        Field("rating_tag", BOOL, False, "also write the most likely rating tag (after the prefix)"),
        Field("batch_size", INT, 8, "images per inference batch", check=AT_LEAST_1),
    ],
)

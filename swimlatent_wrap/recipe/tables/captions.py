"""[captions]: how `swimlatent tag` captions the dataset (WD14 tagger)."""

from swimlatent_wrap.recipe.schema import BOOL, FLOAT, INT, STR, Choice, Field, ListOf, Table
from swimlatent_wrap.tagger.preprocess import RESIZES, SD_SCRIPTS
from swimlatent_wrap.tagger.thresholds import DEFAULT_CHARACTER, DEFAULT_GENERAL, KNOWN
from swimlatent_wrap.values import AT_LEAST_1, PROBABILITY

# Unset thresholds come from the model (tagger.thresholds): its authors' value, else the usual one.
_GENERAL_UNSET = ("unset: the model authors' balanced value ("
                  + ", ".join(f"{m.general:g} for {m.repo_id}" for m in KNOWN) + f"), else {DEFAULT_GENERAL:g}")
_CHARACTER_UNSET = f"unset: {DEFAULT_CHARACTER:g} (the model cards give no character value)"


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
        Field("general_threshold", FLOAT, None, f"general tags at or above this probability; {_GENERAL_UNSET}",
              check=PROBABILITY),
        Field("character_threshold", FLOAT, None, f"character tags at or above this probability; {_CHARACTER_UNSET}",
              check=PROBABILITY),
        Field("blacklist", ListOf(STR), [], "tags never written", check=tags_problem),
        Field("rating_tag", BOOL, False, "also write the most likely rating tag (after the prefix)"),
        Field("batch_size", INT, 8, "images per inference batch", check=AT_LEAST_1),
        Field("resize", Choice(RESIZES), SD_SCRIPTS, "how the padded square is brought to the model's size: "
              "sd-scripts (area averaging to shrink, LANCZOS to enlarge, as sd-scripts' tagger) or bicubic "
              "(Pillow BICUBIC, as the model authors' reference code)"),
    ],
)

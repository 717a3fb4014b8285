"""[modelspec]: Stability AI ModelSpec metadata stamped into the release file."""

from swimlatent_wrap.recipe.schema import BOOL, STR, Field, ListOf, PathKind, Table

TABLE = Table(
    name="modelspec",
    help="`swimlatent stamp`: ModelSpec keys (without the `modelspec.` prefix). `date` defaults to today.",
    fields=[
        Field("title", STR, "", "user-facing model title (also the release file name)"),
        Field("author", STR, "", "author"),
        Field("description", STR, "", "description (markdown allowed)"),
        Field("license", STR, "", "license"),
        Field("date", STR, "", "ISO-8601 date; empty = today"),
        Field("architecture", STR, "stable-diffusion-xl-v1-base", "ModelSpec architecture id"),
        Field("implementation", STR, "sgm", "ModelSpec implementation id"),
        Field("tags", ListOf(STR), [], "categories, written comma-separated"),
        Field("usage_hint", STR, "", "short usage hint (default: the caption prefix)"),
        Field("trigger_phrase", STR, "", "trigger phrase (default: the caption prefix)"),
        Field("thumbnail", PathKind(), None, "image embedded as a small JPEG data URL"),
        Field("strip_paths", BOOL, True, "remove sd-scripts keys that hold local absolute paths"),
    ],
)

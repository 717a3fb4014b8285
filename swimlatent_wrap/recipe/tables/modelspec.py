"""[modelspec]: Stability AI ModelSpec metadata stamped into the release file."""

from swimlatent_wrap.modelspec.spec import date_problem, publish_problem
from swimlatent_wrap.recipe.schema import BOOL, STR, Field, ListOf, PathKind, Table


def _published(value: str | list[str]) -> str | None:
    """A value written into the released file's header: no secrets, no local paths."""
    for item in value if isinstance(value, list) else [value]:
        if (problem := publish_problem(item)) is not None:
            return problem
    return None


def _date(value: str) -> str | None:
    return date_problem(value) if value else None


TABLE = Table(
    name="modelspec",
    help="`swimlatent stamp`: ModelSpec keys (without the `modelspec.` prefix). `date` defaults to today.",
    fields=[
        Field("title", STR, "", "user-facing model title (also the release file name)", check=_published),
        Field("author", STR, "", "author", check=_published),
        Field("description", STR, "", "description (markdown allowed)", check=_published),
        Field("license", STR, "", "license", check=_published),
        Field("date", STR, "", "ISO-8601 date; empty = today", check=_date),
        Field("architecture", STR, "stable-diffusion-xl-v1-base", "ModelSpec architecture id", check=_published),
        Field("implementation", STR, "sgm", "ModelSpec implementation id", check=_published),
        Field("tags", ListOf(STR), [], "categories, written comma-separated", check=_published),
        Field("usage_hint", STR, "", "short usage hint (default: the caption prefix)", check=_published),
        Field("trigger_phrase", STR, "", "trigger phrase (default: the caption prefix)", check=_published),
        Field("thumbnail", PathKind(), None, "image embedded as a small JPEG data URL"),
        Field("strip_paths", BOOL, True, "remove sd-scripts keys that hold local absolute paths"),
    ],
)

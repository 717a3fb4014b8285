"""What one post of /posts.json holds, read defensively: any field may be missing or malformed."""

from __future__ import annotations

import datetime as dt

TAG_FIELDS = ("tag_string", "tag_string_general", "tag_string_character", "tag_string_copyright", "tag_string_artist",
              "tag_string_meta")


def created_at(post: dict) -> dt.datetime | None:
    """When the post was created (time-zone aware; a naive time is taken as UTC), or None when unknown."""
    text = post.get("created_at")
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def post_tags(post: dict) -> set[str]:
    tags: set[str] = set()
    for key in TAG_FIELDS:
        tags.update(str(post.get(key) or "").split())
    return tags

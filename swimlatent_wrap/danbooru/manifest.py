"""datasets/<name>/manifest.sqlite: every post seen, its metadata, status and the reason for any skip/failure.

Only the `posts` table is ours; other tools add their own tables to the same file (the tagger does),
so nothing here drops or rewrites unknown tables. WAL mode; every state change is committed at once.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

STATUSES = ("planned", "downloaded", "skipped", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    id INTEGER PRIMARY KEY,
    md5 TEXT,
    rating TEXT,
    score INTEGER,
    created_at TEXT,
    file_ext TEXT,
    file_size INTEGER,
    width INTEGER,
    height INTEGER,
    file_url TEXT,
    tags_general TEXT,
    tags_character TEXT,
    tags_copyright TEXT,
    tags_artist TEXT,
    tags_meta TEXT,
    split TEXT,
    status TEXT NOT NULL CHECK (status IN ('planned', 'downloaded', 'skipped', 'failed')),
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL
);
CREATE INDEX IF NOT EXISTS posts_split_status ON posts (split, status);
CREATE INDEX IF NOT EXISTS posts_md5 ON posts (md5);
"""

META_COLUMNS = ("md5", "rating", "score", "created_at", "file_ext", "file_size", "width", "height", "file_url",
                "tags_general", "tags_character", "tags_copyright", "tags_artist", "tags_meta")


def post_row(post: dict) -> dict:
    """The manifest's metadata columns from one /posts.json entry."""
    return {
        "md5": post.get("md5"),
        "rating": post.get("rating"),
        "score": post.get("score"),
        "created_at": post.get("created_at"),
        "file_ext": (post.get("file_ext") or "").lower() or None,
        "file_size": post.get("file_size"),
        "width": post.get("image_width"),
        "height": post.get("image_height"),
        "file_url": post.get("file_url"),
        "tags_general": post.get("tag_string_general", ""),
        "tags_character": post.get("tag_string_character", ""),
        "tags_copyright": post.get("tag_string_copyright", ""),
        "tags_artist": post.get("tag_string_artist", ""),
        "tags_meta": post.get("tag_string_meta", ""),
    }


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, post_id: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()

    def record(self, post: dict, split: str, status: str, reason: str | None = None) -> None:
        """Insert or refresh a post's metadata and set its status (one committed transaction)."""
        assert status in STATUSES
        row = post_row(post)
        columns = ", ".join(META_COLUMNS)
        marks = ", ".join("?" for _ in META_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in META_COLUMNS)
        self.db.execute(
            f"INSERT INTO posts (id, {columns}, split, status, reason, updated_at) VALUES (?, {marks}, ?, ?, ?, ?) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}, split = excluded.split, status = excluded.status, "
            "reason = excluded.reason, updated_at = excluded.updated_at",
            (post["id"], *[row[c] for c in META_COLUMNS], split, status, reason, time.time()))
        self.db.commit()

    def set_status(self, post_id: int, status: str, reason: str | None = None, attempts: int = 0) -> None:
        assert status in STATUSES
        self.db.execute("UPDATE posts SET status = ?, reason = ?, attempts = attempts + ?, updated_at = ? WHERE id = ?",
                        (status, reason, attempts, time.time(), post_id))
        self.db.commit()

    def count(self, split: str | None = None, status: str = "downloaded") -> int:
        if split is None:
            return self.db.execute("SELECT COUNT(*) FROM posts WHERE status = ?", (status,)).fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM posts WHERE split = ? AND status = ?", (split, status)).fetchone()[0]

    def rows(self, status: str | None = None) -> list[sqlite3.Row]:
        if status is None:
            return self.db.execute("SELECT * FROM posts ORDER BY score DESC, id DESC").fetchall()
        return self.db.execute("SELECT * FROM posts WHERE status = ? ORDER BY score DESC, id DESC", (status,)).fetchall()

    def counts_by_status(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT status, COUNT(*) FROM posts GROUP BY status")}


def image_name(md5: str, ext: str) -> str:
    return f"{md5}.{ext}"

"""datasets/<name>/manifest.sqlite: every post seen, its metadata, its status and the reason for any skip or failure.

Statuses: seen (returned by a search, eligible, not needed yet), planned (its download started),
downloaded (its file is in images/, md5-verified), skipped (not eligible: the reason says why), failed
(the reason says why; a wrong md5 is final, a network failure is tried again by the next run).

Only the `posts` table is ours; other tools add their own tables to the same file (the tagger does),
so nothing here drops or rewrites unknown tables. WAL mode; every state change is committed at once,
so a kill at any moment leaves the last committed state, which `download.reconcile` squares with the
files on disk at the next start.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterable

SCHEMA_VERSION = 2
STATUSES = ("seen", "planned", "downloaded", "skipped", "failed")
KEEP = ("downloaded", "planned", "failed")  # a search meeting the post again does not touch these

COLUMNS_SQL = """
    id INTEGER PRIMARY KEY,
    md5 TEXT,
    rating TEXT,
    score INTEGER,
    fav_count INTEGER,
    created_at TEXT,
    file_ext TEXT,
    file_size INTEGER,
    width INTEGER,
    height INTEGER,
    file_url TEXT,
    source TEXT,
    tags_general TEXT,
    tags_character TEXT,
    tags_copyright TEXT,
    tags_artist TEXT,
    tags_meta TEXT,
    split TEXT,
    status TEXT NOT NULL CHECK (status IN ('seen', 'planned', 'downloaded', 'skipped', 'failed')),
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_seen REAL,
    updated_at REAL
"""
INDEXES_SQL = """
CREATE INDEX IF NOT EXISTS posts_split_status ON posts (split, status);
CREATE INDEX IF NOT EXISTS posts_md5 ON posts (md5);
"""

META_COLUMNS = ("md5", "rating", "score", "fav_count", "created_at", "file_ext", "file_size", "width", "height",
                "file_url", "source", "tags_general", "tags_character", "tags_copyright", "tags_artist", "tags_meta")


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def post_row(post: dict) -> dict:
    """The manifest's metadata columns from one /posts.json entry."""
    return {
        "md5": post.get("md5"),
        "rating": post.get("rating"),
        "score": _int(post.get("score")),
        "fav_count": _int(post.get("fav_count")),
        "created_at": post.get("created_at"),
        "file_ext": str(post.get("file_ext") or "").lower() or None,
        "file_size": _int(post.get("file_size")),
        "width": _int(post.get("image_width")),
        "height": _int(post.get("image_height")),
        "file_url": post.get("file_url"),
        "source": post.get("source"),
        "tags_general": post.get("tag_string_general", ""),
        "tags_character": post.get("tag_string_character", ""),
        "tags_copyright": post.get("tag_string_copyright", ""),
        "tags_artist": post.get("tag_string_artist", ""),
        "tags_meta": post.get("tag_string_meta", ""),
    }


def image_name(md5: str, ext: str) -> str:
    return f"{md5}.{ext}"


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        self.db.execute("BEGIN IMMEDIATE")  # DDL included: all of it or none of it
        try:
            exists = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'posts'").fetchone()
            if exists:
                # Version 1 lacked the `seen` status in its CHECK, and some columns: copy into the new shape.
                old = [r[1] for r in self.db.execute("PRAGMA table_info(posts)")]
                self.db.execute("ALTER TABLE posts RENAME TO posts_v1")
                self.db.execute("DROP INDEX IF EXISTS posts_split_status")
                self.db.execute("DROP INDEX IF EXISTS posts_md5")
                self.db.execute(f"CREATE TABLE posts ({COLUMNS_SQL})")
                new = [r[1] for r in self.db.execute("PRAGMA table_info(posts)")]
                common = ", ".join(c for c in old if c in new)
                self.db.execute(f"INSERT INTO posts ({common}) SELECT {common} FROM posts_v1")
                self.db.execute("DROP TABLE posts_v1")
            else:
                self.db.execute(f"CREATE TABLE posts ({COLUMNS_SQL})")
            for statement in INDEXES_SQL.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes (each one committed) ---------------------------------------------------------------

    def _upsert_sql(self, guarded: bool) -> str:
        columns = ", ".join(META_COLUMNS)
        marks = ", ".join("?" for _ in META_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in META_COLUMNS)
        guard = " WHERE posts.status NOT IN ('downloaded', 'planned', 'failed')" if guarded else ""
        return (f"INSERT INTO posts (id, {columns}, split, status, reason, first_seen, updated_at) "
                f"VALUES (?, {marks}, ?, ?, ?, ?, ?) "
                f"ON CONFLICT(id) DO UPDATE SET {updates}, split = excluded.split, status = excluded.status, "
                f"reason = excluded.reason, updated_at = excluded.updated_at{guard}")

    def record_page(self, posts: Iterable[dict], split: str, classify: Callable[[dict], str | None]) -> None:
        """A search page: every post with its metadata; status skipped (with the reason ``classify``
        gives) or seen. Posts already planned, downloaded or failed keep their row as it is."""
        now = time.time()
        rows = []
        for post in posts:
            if not isinstance(post.get("id"), int):
                continue
            reason = classify(post)
            meta = post_row(post)
            rows.append((post["id"], *[meta[c] for c in META_COLUMNS], split,
                         "skipped" if reason else "seen", reason, now, now))
        with self.db:
            self.db.executemany(self._upsert_sql(guarded=True), rows)

    def record(self, post: dict, split: str, status: str, reason: str | None = None) -> None:
        """Insert or refresh one post's metadata and set its status."""
        if status not in STATUSES:
            raise ValueError(status)
        meta = post_row(post)
        now = time.time()
        with self.db:
            self.db.execute(self._upsert_sql(guarded=False),
                            (post["id"], *[meta[c] for c in META_COLUMNS], split, status, reason, now, now))

    def set_status(self, post_id: int, status: str, reason: str | None = None, attempts: int = 0) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        with self.db:
            self.db.execute("UPDATE posts SET status = ?, reason = ?, attempts = attempts + ?, updated_at = ? WHERE id = ?",
                            (status, reason, attempts, time.time(), post_id))

    # -- reads -------------------------------------------------------------------------------------

    def get(self, post_id: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()

    def downloaded_with_md5(self, md5: str, other_than: int) -> int | None:
        row = self.db.execute("SELECT id FROM posts WHERE md5 = ? AND status = 'downloaded' AND id != ? LIMIT 1",
                              (md5, other_than)).fetchone()
        return row[0] if row else None

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

"""Tags and probabilities of each captioned image, kept in the dataset manifest (manifest.sqlite).

Only when the manifest already exists (the collector creates it); only our own two tables, made
with CREATE TABLE IF NOT EXISTS, never touching the collector's. Kept per image: the four rating
probabilities and every tag at or above the lower of the two thresholds (the ones a caption can
draw on), so reports and stricter re-captioning need no second model run. One transaction per
batch: a crash loses at most the batch whose captions were being written.

The file is opened through the dataset manifest's own module (danbooru.manifest.ManifestFile, handed
in by the stage as a `ManifestAccess`): one way in, and every SQLite error explained the same way.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from swimlatent_wrap.errors import UserError

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tagger_captions (
        image TEXT PRIMARY KEY,       -- file name in the dataset's images folder
        caption TEXT NOT NULL,        -- the caption line written to <stem>.txt
        model TEXT NOT NULL,          -- the tagger: Hugging Face repo id or folder
        tagged_at TEXT NOT NULL       -- UTC, ISO 8601
    )""",
    """CREATE TABLE IF NOT EXISTS tagger_tags (
        image TEXT NOT NULL,          -- file name in the dataset's images folder
        tag TEXT NOT NULL,            -- as in selected_tags.csv (underscores kept)
        category INTEGER NOT NULL,    -- 9 rating, 0 general, 4 character
        probability REAL NOT NULL,
        PRIMARY KEY (image, tag)
    )""",
)


@dataclass(frozen=True)
class ImageTags:
    image: str
    caption: str
    tags: list[tuple[str, int, float]]  # (tag, category, probability)


class ManifestAccess(Protocol):
    """The dataset manifest as the tagger sees it (danbooru.manifest.ManifestFile)."""

    path: Path

    def exists(self) -> bool: ...

    def connect(self, timeout: float = 60.0) -> sqlite3.Connection:
        """A writable connection; a SQLite error as a UserError."""
        ...

    def explain(self, error: sqlite3.Error) -> UserError:
        """One UserError line for a SQLite error on this file: what it means, what to do."""
        ...


class ManifestRecorder:
    """Writes ImageTags rows; use from one thread only (sqlite3 connections are per thread)."""

    def __init__(self, manifest: ManifestAccess, model: str) -> None:
        self.manifest = manifest
        self.path = manifest.path
        self.model = model
        try:
            self._db = manifest.connect(timeout=60)
        except UserError as error:
            raise UserError(f"cannot record tags in the dataset manifest: {error.lines[0]}") from None
        try:
            with self._db:
                for statement in SCHEMA:
                    self._db.execute(statement)
        except sqlite3.Error as error:
            self._db.close()
            raise self._error(error) from None

    def _error(self, error: sqlite3.Error) -> UserError:
        return UserError(f"cannot record tags in the dataset manifest: {self.manifest.explain(error).lines[0]}")

    def record(self, batch: list[ImageTags]) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            with self._db:
                for item in batch:
                    # A re-caption (--force) replaces the image's rows instead of mixing two runs.
                    self._db.execute("DELETE FROM tagger_tags WHERE image = ?", (item.image,))
                    self._db.execute("INSERT OR REPLACE INTO tagger_captions VALUES (?, ?, ?, ?)",
                                     (item.image, item.caption, self.model, now))
                    self._db.executemany("INSERT INTO tagger_tags VALUES (?, ?, ?, ?)",
                                         [(item.image, tag, category, probability) for tag, category, probability in item.tags])
        except sqlite3.Error as error:
            raise self._error(error) from None

    def close(self) -> None:
        self._db.close()

"""datasets/<name>/manifest.sqlite: every post seen, its metadata, its status and the reason for any skip or failure.

Statuses: seen (returned by a search, eligible, not needed yet), planned (its download started),
downloaded (its file is in images/, md5-verified), skipped (not eligible: the reason says why), failed
(the reason says why; a wrong md5 is final, a network failure is tried again by the next run).

Table `cursors` (schema 3): per split and search (its terms), the (value, id) of the last post the
collector handled in that search's order, and a fingerprint of the local rules it was handled under;
a resumed collect goes on after it instead of from page 1 (download.py). A schema-2 file is upgraded
in place by adding the (empty) table: its first resumed run reads from page 1 once, as before, and
stores cursors from then on. Schema-2 files are still read as they are by read-only commands.

Only the `posts` and `cursors` tables are ours; other tools add their own tables to the same file (the tagger does),
so nothing here drops or rewrites unknown tables. WAL mode; every state change is committed at once,
so a kill at any moment leaves the last committed state, which `download.reconcile` squares with the
files on disk at the next start.

Every access to the file goes through this module: `Manifest` (the collector's reads and writes;
``readonly=True`` for commands that only read, e.g. `swimlatent report` and curate's scores, which then
work on a read-only dataset), and `ManifestFile` (a connection for another tool's own tables, the
tagger's). Every SQLite error comes out as one `UserError` line naming the file and what to do
(`explain`): a full disk, permissions, another program holding it, a failing disk, a damaged file.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from swimlatent_wrap.errors import UserError

SCHEMA_VERSION = 3
READABLE = (2, 3)  # read-only commands read these as they are (schema 3 only added `cursors`)
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
CURSORS_SQL = """
CREATE TABLE IF NOT EXISTS cursors (
    split TEXT NOT NULL,
    search TEXT NOT NULL,
    rules TEXT NOT NULL,
    value INTEGER NOT NULL,
    post_id INTEGER NOT NULL,
    updated_at REAL,
    PRIMARY KEY (split, search)
)
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


# -- opening the file, and what its errors mean -------------------------------------------------------

# SQLite's primary result codes (the low byte of sqlite3.Error.sqlite_errorcode).
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _AUTH, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 23, 26


def _code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def explain(path: Path, error: sqlite3.Error, *, readonly: bool = False) -> UserError:
    """One line: the file, SQLite's words, and what to do about it."""
    code, text = _code(error), str(error) or type(error).__name__
    low = text.lower()
    folder = path.parent
    # A WAL database on a full disk fails as "disk I/O error" (its -shm file cannot grow), not as full.
    if code == _FULL or "disk is full" in low or ((code == _IOERR or "i/o error" in low) and _nearly_full(folder)):
        advice = (f"free space on the disk holding {folder} (or raise your quota), then run again; "
                  "everything recorded before is kept")
    elif code in (_BUSY, _LOCKED) or "locked" in low:
        advice = ("another program holds it open for writing (a SQLite browser, a backup, another swimlatent run on "
                  "another machine): close it or wait for it, then run again")
    elif code in (_CORRUPT, _NOTADB) or "malformed" in low or "not a database" in low:
        advice = ("the file is damaged, or not a SQLite database: restore it from a backup, or move it aside and run "
                  "`swimlatent collect` again, which makes a new one (captions stay; the images are downloaded again)")
    elif code == _IOERR or "i/o error" in low:
        advice = ("the disk failed a read or write (full, failing, or gone: an unplugged drive, a lost network share): "
                  "check free space and the disk (`dmesg`), then run again; what was committed before is kept")
    elif readonly and (code in (_CANTOPEN, _PERM, _AUTH, _READONLY) or "unable to open" in low):
        advice = f"cannot read it: check that you may read {path} and list {folder}"
    elif code in (_CANTOPEN, _PERM, _AUTH, _READONLY) or "readonly" in low or "unable to open" in low:
        advice = (f"cannot open or write it: this run writes into {folder}, so check that you may write it and the "
                  f"files in it ({path.name}, and {path.name}-wal / -shm beside it), or mount it read-write")
    else:
        advice = "an unexpected SQLite error: run again, and report it if it persists"
    return UserError(f"{path}: {text}: {advice}")


def _nearly_full(folder: Path) -> bool:
    """Less than 1 MiB free where ``folder`` is (False when that cannot be told)."""
    for place in (folder, *folder.parents):
        try:
            stat = os.statvfs(place)
        except OSError:
            continue
        return stat.f_bavail * stat.f_frsize < (1 << 20)
    return False


_T = TypeVar("_T")


def _explained(method: Callable[..., _T]) -> Callable[..., _T]:
    """A Manifest method whose SQLite errors become one UserError line (``explain``)."""

    @functools.wraps(method)
    def wrapper(self: "Manifest", *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise explain(self.path, error, readonly=self.readonly) from None

    return wrapper


def _open_readonly(path: Path, timeout: float) -> tuple[sqlite3.Connection, str | None]:
    """``path`` opened read-only (SQLite URI mode=ro), and a note when it had to be read as immutable.

    A WAL database on a read-only folder cannot be opened with mode=ro when its -shm file is missing
    (a clean close removes it): SQLite would have to create it. Then the file is opened immutable=1,
    which reads the main file alone; exact when no -wal file holds changes (the note says when one does)."""
    uri = path.absolute().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db, None
    except sqlite3.OperationalError as error:
        db.close()
        if _code(error) not in (_CANTOPEN, _IOERR, _READONLY, _FULL, _PERM):
            raise
        if not path.is_file():
            raise
        first = error
    db = sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=timeout)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        db.close()
        raise first from None
    wal = path.with_name(path.name + "-wal")
    note = None
    if wal.is_file() and wal.stat().st_size > 0:
        note = (f"{path}: read without its write-ahead log {wal.name} ({first}): the last changes of a run that "
                "ended without closing it may be missing here; a run of collect on a writable copy brings them in")
    return db, note


def connect(path: Path, *, readonly: bool = False, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection to the manifest (``readonly``: opened read-only, falling back as `_open_readonly`
    says); a SQLite error as one UserError line."""
    path = Path(path)
    try:
        if readonly:
            return _open_readonly(path, timeout)[0]
        db = sqlite3.connect(str(path), timeout=timeout)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            db.close()
            raise
        return db
    except sqlite3.Error as error:
        raise explain(path, error, readonly=readonly) from None


class ManifestFile:
    """The manifest file for a tool that keeps its own tables in it (the tagger): a connection made on
    the thread that uses it, and SQLite errors explained. Nothing here touches the `posts` table."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_file()

    def connect(self, timeout: float = 60.0) -> sqlite3.Connection:
        return connect(self.path, timeout=timeout)

    def explain(self, error: sqlite3.Error) -> UserError:
        return explain(self.path, error)


class Manifest:
    """The collector's view of the manifest. ``readonly``: opened read-only, never migrated or written
    (an older schema is upgraded first when the file is writable, else refused with what to do);
    `note` then says when the file had to be read without its write-ahead log. A file without the
    posts table is refused, unless ``empty_ok`` (then `has_posts` is False)."""

    def __init__(self, path: Path, *, readonly: bool = False, empty_ok: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.note: str | None = None
        self.has_posts = True
        if readonly:
            self._open_readonly(empty_ok)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"{self.path.parent}: cannot make the dataset folder: {error.strerror or error}") from None
        self.db = connect(self.path)
        try:
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as error:
            self.db.close()
            raise explain(self.path, error) from None
        except BaseException:
            self.db.close()
            raise

    def _connect_readonly(self) -> None:
        try:
            self.db, self.note = _open_readonly(self.path, 30.0)
        except sqlite3.Error as error:
            raise explain(self.path, error, readonly=True) from None
        self.db.row_factory = sqlite3.Row

    def _open_readonly(self, empty_ok: bool) -> None:
        self._connect_readonly()
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            has_posts = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'posts'").fetchone()
        except sqlite3.Error as error:
            self.db.close()
            raise explain(self.path, error, readonly=True) from None
        if has_posts is None and empty_ok:  # another tool's tables only (the tagger's): no posts to read
            self.has_posts = False
            return
        if has_posts is None:
            self.db.close()
            raise UserError(f"{self.path}: holds no posts yet (a first collect that stopped early?): run `swimlatent collect` "
                            "on the dataset's recipe")
        if version in READABLE:
            return
        self.db.close()
        if version > SCHEMA_VERSION:
            raise UserError(f"{self.path}: written by a newer swimlatent (manifest schema {version}, this one reads "
                            f"{SCHEMA_VERSION}): update swimlatent")
        try:
            Manifest(self.path).close()  # upgrade it in place, once, where it may be written
        except UserError as error:
            raise UserError(f"{self.path}: written by an older swimlatent (manifest schema {version}); reading it needs "
                            f"an upgrade, which failed: {error.lines[0]}") from None
        self._connect_readonly()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        self.db.execute("BEGIN IMMEDIATE")  # DDL included: all of it or none of it
        try:
            exists = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'posts'").fetchone()
            if exists and version == 2:
                pass  # schema 3 only adds the cursors table: the posts stay as they are
            elif exists:
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
            self.db.execute(CURSORS_SQL)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error as error:
            raise explain(self.path, error, readonly=self.readonly) from None

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

    @_explained
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

    @_explained
    def record(self, post: dict, split: str, status: str, reason: str | None = None) -> None:
        """Insert or refresh one post's metadata and set its status."""
        if status not in STATUSES:
            raise ValueError(status)
        meta = post_row(post)
        now = time.time()
        with self.db:
            self.db.execute(self._upsert_sql(guarded=False),
                            (post["id"], *[meta[c] for c in META_COLUMNS], split, status, reason, now, now))

    @_explained
    def set_status(self, post_id: int, status: str, reason: str | None = None, attempts: int = 0) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        with self.db:
            self.db.execute("UPDATE posts SET status = ?, reason = ?, attempts = attempts + ?, updated_at = ? WHERE id = ?",
                            (status, reason, attempts, time.time(), post_id))

    @_explained
    def save_cursors(self, split: str, rules: str, cursors: dict[str, tuple[int, int]]) -> None:
        """Each search's cursor (value, id): every post of it up to there in its order was handled."""
        now = time.time()
        rows = [(split, search, rules, value, post_id, now) for search, (value, post_id) in cursors.items()]
        with self.db:
            self.db.executemany("INSERT INTO cursors (split, search, rules, value, post_id, updated_at) "
                                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(split, search) DO UPDATE SET rules = excluded.rules, "
                                "value = excluded.value, post_id = excluded.post_id, updated_at = excluded.updated_at", rows)

    @_explained
    def cursors(self, split: str, rules: str) -> dict[str, tuple[int, int]]:
        """The split's stored cursors by search, those stored under the same local ``rules`` only."""
        has = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cursors'").fetchone()
        if has is None:
            return {}
        rows = self.db.execute("SELECT search, value, post_id FROM cursors WHERE split = ? AND rules = ?",
                               (split, rules)).fetchall()
        return {search: (int(value), int(post_id)) for search, value, post_id in rows}

    @_explained
    def clear_cursors(self) -> None:
        """Forget every cursor: the next collect reads every search from page 1 again."""
        with self.db:
            self.db.execute("DELETE FROM cursors")

    # -- reads -------------------------------------------------------------------------------------

    @_explained
    def get(self, post_id: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()

    @_explained
    def downloaded_with_md5(self, md5: str, other_than: int) -> int | None:
        row = self.db.execute("SELECT id FROM posts WHERE md5 = ? AND status = 'downloaded' AND id != ? LIMIT 1",
                              (md5, other_than)).fetchone()
        return row[0] if row else None

    @_explained
    def count(self, split: str | None = None, status: str = "downloaded") -> int:
        if split is None:
            return self.db.execute("SELECT COUNT(*) FROM posts WHERE status = ?", (status,)).fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM posts WHERE split = ? AND status = ?", (split, status)).fetchone()[0]

    @_explained
    def rows(self, status: str | None = None) -> list[sqlite3.Row]:
        if status is None:
            return self.db.execute("SELECT * FROM posts ORDER BY score DESC, id DESC").fetchall()
        return self.db.execute("SELECT * FROM posts WHERE status = ? ORDER BY score DESC, id DESC", (status,)).fetchall()

    @_explained
    def counts_by_status(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT status, COUNT(*) FROM posts GROUP BY status")}

    @_explained
    def all_posts(self) -> list[sqlite3.Row]:
        """Every row, in no particular order (the report)."""
        return self.db.execute("SELECT * FROM posts").fetchall()

    @_explained
    def tagger_categories(self) -> dict[str, int]:
        """Tag -> category (0 general, 4 character, 9 rating) of every tag the tagger recorded for any
        image (its `tagger_tags` table); empty when the dataset was never tagged."""
        table = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tagger_tags'").fetchone()
        if table is None:
            return {}
        return {r[0]: r[1] for r in self.db.execute("SELECT DISTINCT tag, category FROM tagger_tags")}

    @_explained
    def downloaded_scores(self) -> dict[str, int]:
        """Image file name -> Danbooru score, for every downloaded post (curate's ranking)."""
        if not self.has_posts:
            return {}
        rows = self.db.execute("SELECT md5, file_ext, score FROM posts WHERE status = 'downloaded'").fetchall()
        return {image_name(md5, ext): int(score or 0) for md5, ext, score in rows}

    @_explained
    def by_file(self, md5: str, ext: str) -> sqlite3.Row | None:
        """The post whose file is ``<md5>.<ext>`` (id, status), if any."""
        return self.db.execute("SELECT id, status FROM posts WHERE md5 = ? AND file_ext = ?", (md5, ext)).fetchone()

    @_explained
    def pending(self, split: str, order_column: str = "score") -> list[sqlite3.Row]:
        """The split's rows that a run took and did not finish: planned (no file in place after
        `download.reconcile`), failed for any reason but a wrong md5, or put back to seen with a reason
        (its file went missing); highest first."""
        column = order_column if order_column in ("score", "fav_count") else "score"
        return self.db.execute(f"SELECT * FROM posts WHERE split = ? AND (status = 'planned' OR (status = 'seen' AND "
                               f"reason IS NOT NULL) OR (status = 'failed' AND COALESCE(reason, '') NOT LIKE "
                               f"'md5 mismatch%')) ORDER BY {column} DESC, id DESC",
                               (split,)).fetchall()

    @_explained
    def placed(self) -> list[sqlite3.Row]:
        """Rows whose file should be, or may be, in images/: planned and downloaded, with an md5 and an extension."""
        return self.db.execute("SELECT id, md5, file_ext, status FROM posts WHERE md5 IS NOT NULL AND file_ext IS NOT NULL "
                               "AND file_ext != '' AND status IN ('planned', 'downloaded')").fetchall()

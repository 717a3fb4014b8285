"""The dataset's disk and manifest failing: a full disk (a small tmpfs), a read-only dataset (a read-only
bind mount as root, where file permissions do not bind; chmod otherwise), a damaged manifest.sqlite,
and what each SQLite error says. Every case ends in one line naming the file and what to do, never
a traceback, and keeps what was done before it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from swimlatent_wrap.danbooru.manifest import Manifest
from tests.danbooru.conftest import write_recipe
from tests.danbooru.test_collect import populate
from tests.helpers import REPO, run_cli

SHIPPED = REPO / "recipes" / "swim-in-latent"


def _mount(*argv: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["mount", *argv], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A small tmpfs at ``folder`` for the block (skips the test where none can be mounted)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root, or CAP_SYS_ADMIN): {done.stderr.strip() if done else 'no mount'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave: int) -> Path:
    """A filler file taking all but ``leave`` bytes of ``folder``'s filesystem."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        handle.truncate(0)
        block = b"\0" * (1 << 16)
        left = max(0, free - leave)
        while left > 0:
            try:
                left -= handle.write(block[:left])
            except OSError:
                break
    return filler


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` read-only for the block: a read-only bind mount of it on itself when root (root
    ignores file permissions), its permissions otherwise."""
    if os.geteuid() != 0:
        paths = [folder, *folder.rglob("*")]
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            os.chmod(p, modes[p] & ~0o222)
        try:
            yield
        finally:
            for p in reversed(paths):
                os.chmod(p, modes[p])
        return
    done = _mount("--bind", str(folder), str(folder))
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot bind-mount the dataset read-only: {done.stderr.strip() if done else 'no mount'}")
    again = _mount("-o", "remount,ro,bind", str(folder))
    if again is None or again.returncode != 0:
        subprocess.run(["umount", str(folder)], capture_output=True)
        pytest.skip(f"cannot remount the dataset read-only: {again.stderr.strip() if again else 'no mount'}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    return lines[0]


def kept(dataset: Path) -> set[str]:
    """The images in place (asserted: each md5-verified, no partial file, every downloaded row's file
    among them, and each with its row: downloaded, or planned when the disk filled between its rename
    and that commit, which the next start's reconcile settles without fetching it again)."""
    images = dataset / "images"
    files = {p.name for p in images.iterdir()} if images.exists() else set()
    assert not [f for f in files if f.endswith(".part")], files
    for name in files:
        assert hashlib.md5((images / name).read_bytes()).hexdigest() == name.split(".")[0]
    if not (dataset / "manifest.sqlite").exists():
        assert not files
        return files
    with sqlite3.connect(dataset / "manifest.sqlite") as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'posts'").fetchone() is None:
            rows = []  # the disk was full before its first table
        else:
            rows = db.execute("SELECT md5 || '.' || file_ext, status FROM posts WHERE status IN ('downloaded', 'planned')").fetchall()
    assert {name for name, status in rows if status == "downloaded"} <= files
    assert files <= {name for name, _ in rows}
    return files


def big_posts(fake, count: int = 30, size: int = 100_000) -> None:
    for i in range(1, count + 1):  # incompressible files of ``size`` bytes each
        fake.add_post(i, score=1000 - i, rating="g" if i % 2 else "s", data=hashlib.sha512(str(i).encode()).digest() * (size // 64))


@pytest.mark.parametrize("leave", [8 << 10, 300 << 10], ids=["full-before-the-manifest", "full-among-the-images"])
def test_collect_on_a_full_disk_says_free_space_and_keeps_what_it_downloaded(fake, tmp_path, leave):
    big_posts(fake)
    recipe = write_recipe(tmp_path / "r", fake.url, 30)
    work = tmp_path / "w"
    with tmpfs(work, "4m"):
        filler = fill(work, leave)
        result = run_cli("--workdir", str(work), "collect", str(recipe))
        assert result.returncode == 1
        line = one_line(result)
        assert "free space on the disk holding" in line and str(work / "datasets" / "dbtest") in line, line
        dataset = work / "datasets" / "dbtest"
        first = kept(dataset)
        # run again on the disk still full: the same one line (a WAL manifest fails as "disk I/O error" there),
        # and what the first run kept is still kept (the space its partial files freed may fit one more)
        still = run_cli("--workdir", str(work), "collect", str(recipe))
        assert still.returncode == 1
        assert "free space on the disk holding" in one_line(still)
        before = kept(dataset)
        assert first <= before
        requests = dict(fake.file_requests)
        filler.unlink()
        again = run_cli("--workdir", str(work), "collect", str(recipe))
        assert again.returncode == 0, again.stderr
        assert f"30/30 images ({30 - len(before)} downloaded now, {len(before)} before" in again.stdout, again.stdout
        assert len(kept(dataset)) == 30
        for name in before:  # in place before: not fetched again
            assert fake.file_requests[name.split(".")[0]] == requests[name.split(".")[0]]


def test_report_on_a_full_disk_prints_the_tables_and_says_free_space(fake, tmp_path):
    populate(fake, per_group=8)
    recipe = write_recipe(tmp_path / "r", fake.url, 8)
    work = tmp_path / "w"
    with tmpfs(work, "4m"):
        assert run_cli("--workdir", str(work), "collect", str(recipe)).returncode == 0
        dataset = work / "datasets" / "dbtest"
        shutil.rmtree(dataset / "report")
        filler = fill(work, 0)
        result = run_cli("--workdir", str(work), "report", str(recipe))
        assert result.returncode == 1
        assert "by rating" in result.stdout and "top tags" in result.stdout  # the tables came first
        line = one_line(result)
        assert "the report page was not written: free space on the disk holding" in line, line
        filler.unlink()
        again = run_cli("--workdir", str(work), "report", str(recipe))
        assert again.returncode == 0, again.stderr
        assert (dataset / "report" / "index.html").is_file()


def test_a_read_only_dataset_is_reported_and_curated_but_not_collected(fake, tmp_path):
    populate(fake, per_group=8)
    recipe = write_recipe(tmp_path / "r", fake.url, 8)
    work = tmp_path / "w"
    assert run_cli("--workdir", str(work), "collect", str(recipe)).returncode == 0
    dataset = work / "datasets" / "dbtest"
    shutil.rmtree(dataset / "report")
    lora = tmp_path / "r" / "lora.toml"
    lora.write_text(f'extends = "{SHIPPED}/lora.toml"\nname = "lora"\n[dataset]\nfrom_dataset = "dbtest"\n'
                    'select_count = 3\nselection = "lora-selection.txt"\n')
    files = sorted(p.name for p in (dataset / "images").iterdir())
    with read_only(dataset):
        report = run_cli("--workdir", str(work), "report", str(recipe))
        assert report.returncode == 0, report.stderr
        assert "by rating" in report.stdout and "top tags" in report.stdout and "Traceback" not in report.stderr
        assert "the report page was not written (the dataset folder is read-only)" in report.stderr
        # curate reads its source read-only (the manifest's scores included) and writes only its own dataset
        curated = run_cli("--workdir", str(work), "curate", str(lora))
        assert curated.returncode == 0, curated.stderr
        with sqlite3.connect(f"{(dataset / 'manifest.sqlite').as_uri()}?immutable=1", uri=True) as db:
            best = db.execute("SELECT md5 || '.' || file_ext FROM posts WHERE status = 'downloaded' "
                              "ORDER BY score DESC, id DESC LIMIT 1").fetchone()[0]
        chosen = [n for n in (tmp_path / "r" / "lora-selection.txt").read_text().splitlines() if not n.startswith("#")]
        assert chosen[0] == best  # ranked by the manifest's scores (the fake's pictures are near-duplicates)
        collect = run_cli("--workdir", str(work), "collect", str(recipe))
        assert collect.returncode == 1
        line = one_line(collect)
        assert "cannot take the run lock" in line and "must be writable" in line and str(dataset) in line, line
        assert sorted(p.name for p in (dataset / "images").iterdir()) == files


@pytest.mark.parametrize("damage", ["not-a-database", "malformed"])
def test_a_damaged_manifest_is_one_line_saying_what_to_do(fake, tmp_path, damage):
    populate(fake, per_group=8)
    recipe = write_recipe(tmp_path / "r", fake.url, 8)
    work = tmp_path / "w"
    assert run_cli("--workdir", str(work), "collect", str(recipe)).returncode == 0
    manifest = work / "datasets" / "dbtest" / "manifest.sqlite"
    data = bytearray(manifest.read_bytes())
    if damage == "not-a-database":
        data[:] = b"this is not a database\n" * 400
    else:  # the header intact, every page after the first overwritten
        data[4096:] = b"\xa5" * (len(data) - 4096)
    manifest.write_bytes(bytes(data))
    lora = tmp_path / "r" / "lora.toml"
    lora.write_text(f'extends = "{SHIPPED}/lora.toml"\nname = "lora"\n[dataset]\nfrom_dataset = "dbtest"\n'
                    'select_count = 3\nselection = "lora-selection.txt"\n')
    for argv in (["report", str(recipe)], ["collect", str(recipe)], ["curate", str(lora)]):
        result = run_cli("--workdir", str(work), *argv)
        assert result.returncode == 1, (argv, result.stdout, result.stderr)
        line = one_line(result)
        assert str(manifest) in line and "restore it from a backup, or move it aside" in line, (argv, line)


def test_every_sqlite_error_is_explained_in_one_line(tmp_path):
    """Real SQLite errors, each turned into its line: what it is and what to do."""
    from swimlatent_wrap.danbooru.manifest import explain

    path = tmp_path / "manifest.sqlite"
    with Manifest(path) as manifest:
        manifest.record({"id": 1, "md5": "0" * 32, "file_ext": "png"}, "g", "downloaded")

    def error_of(action) -> sqlite3.Error:
        with pytest.raises(sqlite3.Error) as caught:
            action()
        return caught.value

    # full: the database may not grow past its page limit
    full = sqlite3.connect(path)
    full.execute(f"PRAGMA max_page_count = {full.execute('PRAGMA page_count').fetchone()[0]}")
    filled = error_of(lambda: [full.execute("INSERT INTO posts (id, status, tags_general) VALUES (?, 'seen', ?)",
                                            (i, "x" * 4000)) for i in range(2, 100)])
    full.rollback()
    full.close()
    # locked: another connection in a write transaction
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0)
    locked = error_of(lambda: other.execute("UPDATE posts SET score = 1"))
    other.close()
    holder.execute("ROLLBACK")
    holder.close()
    readonly_db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    readonly = error_of(lambda: readonly_db.execute("UPDATE posts SET score = 1"))
    readonly_db.close()
    cantopen = error_of(lambda: sqlite3.connect(tmp_path / "no" / "such" / "manifest.sqlite").execute("SELECT 1"))
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all\n" * 200)
    notadb = error_of(lambda: sqlite3.connect(junk).execute("SELECT * FROM sqlite_master").fetchall())

    cases = [(filled, "database or disk is full", f"free space on the disk holding {tmp_path}"),
             (locked, "database is locked", "another program holds it open for writing"),
             (readonly, "readonly database", "check that you may write it"),
             (cantopen, "unable to open database file", "check that you may write it"),
             (notadb, "file is not a database", "restore it from a backup, or move it aside")]
    for error, words, advice in cases:
        line = str(explain(path, error))
        assert "\n" not in line and line.startswith(f"{path}: ") and words in line and advice in line, line
    assert "cannot read it: check that you may read" in str(explain(path, cantopen, readonly=True))


LEAVE_A_WAL = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA wal_autocheckpoint = 0")
db.execute("UPDATE posts SET status = 'failed', reason = 'network: late change' WHERE id = (SELECT max(id) FROM posts WHERE status = 'downloaded')")
db.commit()
os._exit(0)  # no close: the change stays in the -wal file, never checkpointed
"""


def test_a_read_only_manifest_whose_wal_cannot_be_read_is_reported_with_a_note(fake, tmp_path):
    """A dataset copied read-only with a -wal file but no -shm: SQLite cannot open it read-only, so it
    is read as immutable (the main file alone), and the report says what may be missing."""
    import sys

    populate(fake, per_group=8)
    recipe = write_recipe(tmp_path / "r", fake.url, 8)
    work = tmp_path / "w"
    assert run_cli("--workdir", str(work), "collect", str(recipe)).returncode == 0
    dataset = work / "datasets" / "dbtest"
    manifest = dataset / "manifest.sqlite"
    subprocess.run([sys.executable, "-c", LEAVE_A_WAL, str(manifest)], check=True, timeout=60)
    assert (dataset / "manifest.sqlite-wal").stat().st_size > 0
    (dataset / "manifest.sqlite-shm").unlink()
    with read_only(dataset):
        result = run_cli("--workdir", str(work), "report", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{manifest}: read without its write-ahead log manifest.sqlite-wal" in result.stderr
    assert "dataset dbtest: downloaded 8" in result.stdout  # the main file's state: the late change is not in it


def test_a_disk_io_error_on_a_full_disk_says_free_space(tmp_path):
    """SQLite reports a WAL database on a full disk as "disk I/O error" (its -shm file cannot grow):
    the line says to free space while the disk is full, and names a failing disk otherwise."""
    from swimlatent_wrap.danbooru.manifest import explain

    with tmpfs(tmp_path / "disk", "8m") as disk:
        path = disk / "manifest.sqlite"
        Manifest(path).close()  # WAL mode; a clean close removes the -shm file
        filler = fill(disk, 0)
        db = sqlite3.connect(path)
        with pytest.raises(sqlite3.OperationalError) as caught:
            db.execute("SELECT count(*) FROM posts").fetchone()
        db.close()
        assert "disk I/O error" in str(caught.value)
        assert f"free space on the disk holding {disk}" in str(explain(path, caught.value))
        filler.unlink()
        assert "the disk failed a read or write" in str(explain(path, caught.value))

"""Dataset locks (swimlatent_wrap.locks): one run changes a dataset at a time; a second one stops at once,
names the first (pid, command) and exits 1 having touched nothing; the kernel lets a lock go however its
holder ends. Holders here are real processes: a `swimlatent collect` held mid-download by the fake
Danbooru's gate, or a small child that takes the lock and says so on stdout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from swimlatent_wrap import locks
from swimlatent_wrap.errors import UserError
from tests.danbooru.conftest import write_recipe
from tests.danbooru.test_collect import ENV, KEY, check_dataset, populate
from tests.danbooru.test_curate import curate, style_set  # noqa: F401 - the fixture
from tests.helpers import REPO, run_cli

HOLD = """
import sys
from pathlib import Path
from swimlatent_wrap import locks
with locks.dataset(Path(sys.argv[1]), doing=sys.argv[2], shared=sys.argv[3] == "shared"):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def holding(folder: Path, *, doing: str = "collect", shared: bool = False):
    """Another process holding ``folder``'s dataset lock until the block ends (handshake: its "held" line)."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), doing, "shared" if shared else "exclusive"],
                             cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        assert line == "held\n", child.communicate(timeout=30)[1]
        yield child
    finally:
        if child.poll() is None:
            child.stdin.close()  # type: ignore[union-attr]
        child.wait(timeout=30)


def test_a_second_collect_stops_names_the_first_and_the_first_completes(fake, tmp_path):
    """Before the lock, the second run's start-up removed the first's partial download, and the first
    ended in `No such file or directory (…/<md5>.png.part)`."""
    fake.credentials = ("alice", KEY)
    populate(fake, per_group=10)
    fake.hold_files = 1  # the first collect's first download waits on the gate
    recipe = write_recipe(tmp_path, fake.url, 8, concurrency=1)
    workdir = tmp_path / "w"
    images = workdir / "datasets" / "dbtest" / "images"
    argv = [sys.executable, "-m", "swimlatent_wrap", "--workdir", str(workdir), "collect", str(recipe)]
    first = subprocess.Popen(argv, cwd=REPO, env=dict(os.environ, **ENV), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert fake.held.wait(60), "the first collect never asked for a file"
        parts = sorted(images.glob("*.part"))
        assert len(parts) == 1  # its one download in flight (concurrency 1), held
        second = run_cli("--workdir", str(workdir), "collect", str(recipe), env=ENV, timeout=60)
        assert sorted(images.glob("*.part")) == parts, second.stdout + second.stderr  # left alone
    finally:
        fake.release.set()
    out, err = first.communicate(timeout=120)
    assert second.returncode == 1, second.stdout + second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
    assert f"dataset 'dbtest' is in use by another swimlatent run (pid {first.pid}): `swimlatent --workdir" in lines[0]
    assert f"collect {recipe}`" in lines[0] and f"kill {first.pid}" in lines[0]
    assert second.stdout == ""  # stopped before anything, the plan included
    assert first.returncode == 0, err
    assert "8/8 images" in out
    check_dataset(fake, workdir, 8, out + err + second.stderr)
    assert (workdir / "datasets" / "dbtest" / ".lock").read_text() == ""  # let go, and its line cleared


def test_a_killed_holder_leaves_no_lock_behind(fake, tmp_path):
    populate(fake, per_group=4)
    recipe = write_recipe(tmp_path, fake.url, 4)
    dataset = tmp_path / "w" / "datasets" / "dbtest"
    with holding(dataset) as child:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert f"pid {child.pid}" in (dataset / ".lock").read_text()  # its line stays; the lock does not
        result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "4/4 images" in result.stdout


def test_collect_refuses_a_dataset_another_run_is_reading(fake, tmp_path):
    recipe = write_recipe(tmp_path, fake.url, 4)
    dataset = tmp_path / "w" / "datasets" / "dbtest"
    with holding(dataset, doing="curate (reading)", shared=True):
        result = run_cli("--workdir", str(tmp_path / "w"), "collect", str(recipe))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "dataset 'dbtest' is being read by another swimlatent run" in result.stderr
    assert not fake.api_requests and not (dataset / "manifest.sqlite").exists()


def test_curate_locks_its_dataset_and_reads_its_source_shared(style_set):  # noqa: F811
    work = style_set / "work" / "datasets"
    selection = style_set / "recipes" / "lora-selection.txt"
    with holding(work / "danbooru-lora", doing="select") as child:
        result = curate(style_set)
    assert result.returncode == 1 and f"dataset 'danbooru-lora' is in use by another swimlatent run (pid {child.pid})" in result.stderr
    assert not selection.exists() and not (work / "danbooru-lora" / "curate").exists()
    with holding(work / "danbooru-ft", doing="collect") as child:
        result = curate(style_set)
    assert result.returncode == 1 and f"dataset 'danbooru-ft' is in use by another swimlatent run (pid {child.pid})" in result.stderr
    assert not selection.exists()
    with holding(work / "danbooru-ft", doing="curate (reading)", shared=True):  # two readers of one source
        result = curate(style_set)
    assert result.returncode == 0, result.stderr
    assert selection.is_file()


def test_select_locks_its_dataset_and_reads_its_source_shared(style_set):  # noqa: F811
    from swimlatent_wrap.recipe import load_recipe
    from swimlatent_wrap.stages.selection import materialize_selection
    from swimlatent_wrap.workdir import Workdir

    (style_set / "recipes" / "lora-selection.txt").write_text(f"{0:032x}.png\n{1:032x}.png\n")
    recipe = load_recipe(style_set / "recipes" / "lora.toml")
    workdir = Workdir(style_set / "work")
    target = workdir.images_dir("danbooru-lora")
    with holding(workdir.dataset_dir("danbooru-lora"), doing="curate") as child:
        with pytest.raises(locks.Busy, match=rf"dataset 'danbooru-lora' is in use by another swimlatent run \(pid {child.pid}\)"):
            materialize_selection(recipe, workdir)
    assert not target.exists()
    with holding(workdir.dataset_dir("danbooru-ft"), doing="tag") as child:
        with pytest.raises(UserError, match=rf"dataset 'danbooru-ft' is in use by another swimlatent run \(pid {child.pid}\)"):
            materialize_selection(recipe, workdir)
    assert not target.exists()
    with holding(workdir.dataset_dir("danbooru-ft"), doing="curate (reading)", shared=True):
        linked = materialize_selection(recipe, workdir)
    assert sorted(p.name for p in linked) == [f"{0:032x}.png", f"{1:032x}.png"]


def test_a_lock_is_reentrant_within_one_process_and_names_its_holder(tmp_path):
    folder = tmp_path / "datasets" / "mine"
    with locks.dataset(folder, doing="collect"):
        text = (folder / ".lock").read_text()
        holder = locks.Holder.parse(text)
        assert holder.pid == os.getpid() and holder.doing == "collect" and holder.since
        with locks.dataset(folder, doing="tag"):  # the same process again: no self-refusal
            pass
        with locks.dataset(folder, doing="curate (reading)", shared=True):
            pass
        assert (folder / ".lock").read_text() == text
    assert (folder / ".lock").read_text() == ""
    with locks.dataset(folder, doing="curate (reading)", shared=True):
        with pytest.raises(RuntimeError, match="exclusive lock inside a shared one"):
            with locks.dataset(folder, doing="collect"):
                pass

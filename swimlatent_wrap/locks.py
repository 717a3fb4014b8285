"""Run locks: one swimlatent run at a time changes a dataset (or trains a stage).

A lock is a `.lock` file in the folder it guards (``datasets/<name>/.lock``, ``runs/<stage>/.lock``),
held with ``flock`` for as long as the run works there: the kernel lets it go when the process ends
however it ends (a kill included), so a stale lock never needs cleaning up. The file's text says who
holds it (pid, what it does, the command line, since when), so a second run can name the holder.

    with locks.hold(workdir.dataset_dir("ft"), name="dataset 'ft'", doing="collect"):
        ...

Exclusive holders (the runs that write) write their line; shared holders (``shared=True``: the runs
that only read the folder, e.g. a curate reading its source dataset) do not, and many may hold the
lock together. A reader of a folder where no lock file can be made (a read-only folder) takes no
lock: no run can change the folder through that path either.

Within one process a lock already held is held again at no cost (re-entrant), so a stage that locks
a dataset may call another that locks it too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from swimlatent_wrap.errors import UserError

LOCK_NAME = ".lock"
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


@dataclass(frozen=True)
class Holder:
    """What a lock file says about the run holding it (any field may be unknown: None)."""

    pid: int | None = None
    doing: str | None = None
    command: str | None = None
    since: str | None = None

    @classmethod
    def parse(cls, text: str) -> Holder:
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key and value.strip():
                fields[key] = value.strip()
        try:
            pid = int(fields["pid"]) if "pid" in fields else None
        except ValueError:
            pid = None
        return cls(pid, fields.get("doing"), fields.get("command"), fields.get("since"))

    def text(self) -> str:
        return "".join(f"{key} {value}\n" for key, value in (("pid", self.pid), ("doing", self.doing),
                                                            ("command", self.command), ("since", self.since))
                       if value is not None)

    def describe(self) -> str:
        """'(pid 1234): `swimlatent collect r.toml` since 2024-06-01 12:00:01' (what is known of it)."""
        text = f"(pid {self.pid})" if self.pid is not None else "(pid unknown: it is just starting)"
        if self.command or self.doing:
            text += f": `{self.command}`" if self.command else f": {self.doing}"
        if self.since:
            text += f" since {self.since}"
        return text


class Busy(UserError):
    """The lock is held by another run; ``holder`` says by whom (None: by readers, who leave no line)."""

    def __init__(self, line: str, holder: Holder | None) -> None:
        super().__init__(line)
        self.holder = holder


@dataclass
class _Held:
    shared: bool
    count: int = 1


# Locks this process holds, by lock-file path. flock locks belong to an open file, so a second open()
# of the same file in this process would be refused by our own first one.
_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


def command_line() -> str:
    """This process's command, as a user would type it: `swimlatent collect r.toml`."""
    argv = list(sys.argv)
    if argv and (argv[0].endswith("__main__.py") or Path(argv[0]).name in ("swimlatent", "swimlatent_wrap")):
        argv[0] = "swimlatent"
    return shlex.join(argv) if argv else "?"


@contextlib.contextmanager
def hold(folder: Path, *, name: str, doing: str, shared: bool = False, busy: str | None = None,
         advice: str | None = None) -> Iterator[None]:
    """Hold ``folder``'s lock for the block (``name``: what it guards, e.g. "dataset 'ft'"; ``doing``: what
    this run does there, written for the next run to read). When another run holds it: a `Busy` error,
    one line: ``busy`` (default "<name> is in use by another swimlatent run"), the holder, ``advice``."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    key = os.path.abspath(path)
    with _held_guard:
        mine = _held.get(key)
        if mine is not None:
            if mine.shared and not shared:
                raise RuntimeError(f"{path}: taking an exclusive lock inside a shared one of the same process")
            mine.count += 1
    if mine is not None:
        try:
            yield
        finally:
            with _held_guard:
                mine.count -= 1
        return

    handle = _open(folder, path, shared)
    if handle is None:  # a reader of a folder no lock file can be made in
        yield
        return
    try:
        _acquire(handle, name, shared, busy, advice)
        if not shared:
            _write(handle, Holder(os.getpid(), doing, command_line(), time.strftime("%Y-%m-%d %H:%M:%S")))
        with _held_guard:
            _held[key] = _Held(shared)
        try:
            yield
        finally:
            with _held_guard:
                del _held[key]
            if not shared:
                with contextlib.suppress(OSError):  # a full disk must not hide the run's own outcome
                    os.ftruncate(handle.fileno(), 0)
    finally:
        handle.close()  # closing the file lets the lock go


def _open(folder: Path, path: Path, shared: bool) -> IO[str] | None:
    """The lock file, opened read-write (created when missing); None for a reader that cannot create it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Not truncated on open (another run may hold it), and not O_APPEND (the holder's line is
        # written at offset 0 in one pwrite).
        fd, mode = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644), "rw"
    except OSError as error:
        if shared and error.errno in _READ_ONLY + (errno.ENOENT,):
            try:
                fd, mode = os.open(path, os.O_RDONLY | os.O_CLOEXEC), "r"
            except OSError:
                return None
        elif error.errno in _READ_ONLY:
            raise UserError(f"{path}: cannot take the run lock ({error.strerror}): this run writes into {folder}, "
                            "so it must be writable; check its permissions, or mount it read-write") from None
        elif error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"{path}: cannot take the run lock ({error.strerror}): free space on the disk "
                            f"holding {folder}, then run again") from None
        else:
            raise
    return os.fdopen(fd, "r+" if mode == "rw" else "r", encoding="utf-8")


def _acquire(handle: IO[str], name: str, shared: bool, busy: str | None, advice: str | None) -> None:
    import fcntl

    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    # Held: by readers only (they leave no line), or by a writer (its line names it)?
    readers = False
    if not shared:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            readers = True
            fcntl.flock(handle, fcntl.LOCK_UN)
        except BlockingIOError:
            pass
    if readers:
        raise Busy(f"{name} is being read by another swimlatent run (a curate, or a select of a dataset picked from "
                   f"it); {advice or 'wait for it to finish, then run this again'}", None)
    handle.seek(0)
    holder = Holder.parse(handle.read())
    stop = f"kill {holder.pid}" if holder.pid is not None else "kill it"
    advice = advice or f"wait for it to finish, or stop it (Ctrl-C in its terminal, or {stop}), then run this again"
    raise Busy(f"{busy or f'{name} is in use by another swimlatent run'} {holder.describe()}; {advice}", holder)


def _write(handle: IO[str], holder: Holder) -> None:
    """The holder's line, in one write at the start of the file (a reader sees it whole or not at all)."""
    data = holder.text().encode("utf-8")
    with contextlib.suppress(OSError):  # the line is a courtesy to the next run; the lock holds without it
        fd = handle.fileno()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))


def dataset(folder: Path, *, doing: str, shared: bool = False) -> contextlib.AbstractContextManager[None]:
    """``datasets/<name>/``'s lock: exclusive for a run that changes the dataset (collect, tag, a
    selection's linking), shared for one that only reads it (curate and select reading their source)."""
    folder = Path(folder)
    return hold(folder, name=f"dataset {folder.name!r}", doing=doing, shared=shared)

"""A memory watchdog for the real tier: samples the resident memory of a whole process tree (the
CLI, accelerate's launcher, the sd-scripts script) and stops the tree past a limit, so a run that
would push a 24 GB machine into the kernel's OOM killer fails as a test instead.

Two numbers per sample: RSS (all resident pages, as `ps` shows it) and the anonymous part (RSS less
file-backed pages; Linux: RssAnon + RssShmem). A checkpoint read through mmap is resident as file
pages the kernel can drop at any time, so only the anonymous part can run a machine out of memory:
the limit applies to it, and both peaks are reported.

Sampling every half second measures the peak of a run that lasts minutes to within one sample;
the peak that counts — saving a model — lasts seconds.

    python tests/real/watchdog.py --limit-gib 21 -- COMMAND...    (prints wall s and peak GiB)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil

GIB = 1024 ** 3


# Which sd-scripts program a process tree is running, by its command lines (the first match wins).
PROGRAMS = (("sdxl_merge_lora.py", "sdxl_merge_lora"), ("sdxl_gen_img.py", "sdxl_gen_img"),
            ("sdxl_train_network.py", "sdxl_train_network"), ("sdxl_train.py", "sdxl_train"))


def anonymous_bytes(pid: int, rss: int) -> int:
    """RssAnon + RssShmem from /proc/<pid>/status; the whole RSS where that cannot be read."""
    try:
        fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if line.startswith(("RssAnon", "RssShmem")))
        return sum(int(value.split()[0]) * 1024 for value in fields.values()) if fields else rss
    except (OSError, ValueError):
        return rss


def tree_rss(root: psutil.Process) -> tuple[int, int, str | None]:
    """Resident and anonymous bytes of ``root`` and every descendant (a process gone meanwhile
    counts 0), and the sd-scripts program running in the tree, if any."""
    total, anonymous, lines = 0, 0, []
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0, None
    for process in processes:
        try:
            rss = process.memory_info().rss
            total += rss
            anonymous += anonymous_bytes(process.pid, rss)
            lines.append(" ".join(process.cmdline()))
        except psutil.Error:
            pass
    program = next((label for needle, label in PROGRAMS if any(needle in line for line in lines)), None)
    return total, anonymous, program


@dataclass
class Phase:
    """One sd-scripts program's share of a watched run."""

    peak: int = 0  # RSS
    peak_anonymous: int = 0
    first: float = 0.0
    last: float = 0.0

    @property
    def seconds(self) -> float:
        return self.last - self.first


@dataclass
class Watchdog:
    pid: int
    limit: int  # bytes
    interval: float = 0.5
    peak: int = 0  # RSS of the tree
    peak_anonymous: int = 0  # what the limit applies to
    killed: bool = False
    phases: dict[str, Phase] = field(default_factory=dict)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "Watchdog":
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._done.wait(self.interval):
            rss, anonymous, program = tree_rss(root)
            self.peak, self.peak_anonymous = max(self.peak, rss), max(self.peak_anonymous, anonymous)
            if program:
                now = time.monotonic()
                phase = self.phases.setdefault(program, Phase(first=now))
                phase.peak, phase.last = max(phase.peak, rss), now
                phase.peak_anonymous = max(phase.peak_anonymous, anonymous)
            if anonymous > self.limit and not self.killed:
                self.killed = True
                try:
                    os.killpg(os.getpgid(self.pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-gib", type=float, default=21.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    started = time.monotonic()
    process = subprocess.Popen(command, start_new_session=True)
    dog = Watchdog(process.pid, int(args.limit_gib * GIB)).start()
    code = process.wait()
    dog.stop()
    print(f"watchdog: exit {code}, {time.monotonic() - started:.0f} s, peak RSS {dog.peak / GIB:.2f} GiB, "
          f"anonymous {dog.peak_anonymous / GIB:.2f} GiB"
          + (" (killed at the limit)" if dog.killed else ""), file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

"""What the user sees while tagging: notes, loud warnings, and a rich progress bar (images/s, ETA)
only when stderr is a terminal, so logs and pipes get plain lines and no control codes."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator, TextIO


class Terminal:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._console = None

    def _rich(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)
        return self._console

    def note(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def warn(self, *lines: str) -> None:
        if self.interactive:
            from rich.text import Text

            for index, line in enumerate(lines):
                self._rich().print(Text(("warning: " if index == 0 else "") + line, style="bold yellow"))
        else:
            for index, line in enumerate(lines):
                print(("warning: " if index == 0 else "") + line, file=self.stream, flush=True)

    @contextlib.contextmanager
    def progress(self, total: int, what: str) -> Iterator[Callable[[int], None]]:
        """Yields ``advance(n)``; draws a bar only on a terminal."""
        if not self.interactive:
            yield lambda n: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text("… images/s" if speed is None else f"{speed:.2f} images/s")

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=self._rich(), transient=False) as bar:
            task = bar.add_task(what, total=total)
            yield lambda n: bar.advance(task, n)

"""Captions written on their own thread, so the model never waits for the disk.

Every caption is written whole (swimlatent_wrap.atomic: temp file, fsync, rename), then its tags
recorded in the manifest when there is one. ``close`` drains the queue, so on Ctrl-C or an error
in the main loop every caption already computed still reaches the disk.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable

from swimlatent_wrap.atomic import write_text
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.images import caption_of
from swimlatent_wrap.tagger.record import ImageTags, ManifestRecorder

_DONE = object()


class CaptionWriter:
    def __init__(self, folder: Path, recorder: Callable[[], ManifestRecorder] | None = None) -> None:
        self._folder = folder
        self._make_recorder = recorder
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self.written: list[Path] = []
        self._thread = threading.Thread(target=self._work, name="swimlatent-captions", daemon=True)
        self._thread.start()

    def put(self, batch: list[ImageTags]) -> None:
        self.check()
        self._queue.put(batch)

    def check(self) -> None:
        """Raise the writer's error, if it has hit one, in the caller's thread."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        self.check()

    def _work(self) -> None:
        recorder = None
        try:
            # The sqlite connection must be made on the thread that uses it.
            recorder = self._make_recorder() if self._make_recorder else None
            while (batch := self._queue.get()) is not _DONE:
                for item in batch:
                    target = caption_of(self._folder / item.image)
                    try:
                        write_text(target, item.caption + "\n")
                    except OSError as error:
                        raise UserError(f"{target}: cannot write the caption: {error.strerror or error}") from None
                    self.written.append(target)
                if recorder is not None:
                    recorder.record(batch)
        except BaseException as error:  # handed to the main thread by check()
            self._error = error
            # Keep draining so put() never blocks on a dead writer.
            while self._queue.get() is not _DONE:
                pass
        finally:
            if recorder is not None:
                recorder.close()

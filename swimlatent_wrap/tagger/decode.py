"""Decode and preprocess images on worker threads, ahead of the model, in the original order.

Threads, not processes: Pillow's decoders and resizers and numpy's array work release the GIL, so
threads run them in parallel without copying 2.4 MB arrays between processes, and onnxruntime
releases it too while the model runs on the main thread. A bounded read-ahead keeps memory flat.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Iterable

from swimlatent_wrap.tagger.preprocess import SD_SCRIPTS, preprocess_file


@dataclass(frozen=True)
class Decoded:
    path: Path
    pixels: Any = None  # float32 [size, size, 3] BGR, or None when the file could not be read
    error: str | None = None


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _decode(path: Path, size: int, resize: str = SD_SCRIPTS) -> Decoded:
    try:
        return Decoded(path, preprocess_file(path, size, resize))
    except Exception as error:  # Pillow raises many types (OSError, SyntaxError, ValueError, …) for a bad file
        return Decoded(path, error=_reason(error))


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def decode_ahead(paths: Iterable[Path], size: int, workers: int, ahead: int,
                 resize: str = SD_SCRIPTS) -> Generator[Decoded, None, None]:
    """Yield every path's ``Decoded`` in order, keeping up to ``ahead`` decodes in flight;
    ``resize``: preprocess.SD_SCRIPTS or preprocess.BICUBIC."""
    from concurrent.futures import ThreadPoolExecutor

    ahead = max(ahead, workers, 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="swimlatent-decode") as pool:
        in_flight: deque = deque()
        try:
            for path in paths:
                in_flight.append(pool.submit(_decode, path, size, resize))
                if len(in_flight) >= ahead:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            # Stopped early (an error or Ctrl-C in the consumer): drop what has not started.
            for future in in_flight:
                future.cancel()

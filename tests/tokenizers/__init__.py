"""Tests of the CLIP tokenizer cache (swimlatent_wrap.stages.tokenizers) and `swimlatent tokenizers`."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def bpe_file() -> Path:
    """open_clip's bpe_simple_vocab_16e6.txt.gz, from the open-clip-torch wheel the Makefile installs
    with --no-deps: found without importing open_clip (that would need torch)."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    raise FileNotFoundError("open_clip's bpe_simple_vocab_16e6.txt.gz is not installed; "
                            "`.venv/bin/python -m pip install --no-deps open-clip-torch==3.3.0` (make test does it)")

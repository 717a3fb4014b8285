"""The CLIP token counter for the report's caption statistics, from the tokenizer cache.

sd-scripts counts a caption's tokens with tokenizer 1 (``openai/clip-vit-large-patch14``) loaded from
``--tokenizer_cache_dir``; the same folder is used here, by transformers' CLIPTokenizer or the
`tokenizers` package (a ``tokenizer.json`` in the folder), whichever is importable. The package
depends on neither: without them, or without a complete cache, the caller falls back to an estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from swimlatent_wrap.stages.tokenizers import TOKENIZERS, folder_problem

DEFAULT_MAX_TOKEN_LENGTH = 75


def max_token_length(args: dict[str, Any]) -> int:
    """The recipe's [args] max_token_length (sd-scripts: 75 when unset; 150 or 225 otherwise)."""
    value = args.get("max_token_length")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_MAX_TOKEN_LENGTH


def token_counter(cache: Path) -> tuple[Callable[[str], int] | None, str]:
    """(count, what it is), or (None, why not): the count is of tokens without BOS/EOS."""
    folder = cache / TOKENIZERS[0].folder
    problem = folder_problem(folder)
    if problem is not None:
        return None, f"tokenizer {folder} {problem}"
    try:
        from transformers import CLIPTokenizer
    except ImportError:
        pass
    else:
        try:
            from transformers.utils import logging as transformers_logging

            transformers_logging.set_verbosity_error()  # no "longer than the maximum" warning per long caption
            clip: Any = CLIPTokenizer.from_pretrained(str(folder))
        except Exception as error:  # noqa: BLE001 - any load failure means: estimate instead
            return None, f"tokenizer {folder} did not load ({type(error).__name__}: {error})"

        def count_clip(text: str) -> int:
            return len(clip(text, add_special_tokens=False, truncation=False)["input_ids"])

        return count_clip, f"the CLIP tokenizer ({TOKENIZERS[0].repo_id}, transformers)"
    if (folder / "tokenizer.json").is_file():
        try:
            from tokenizers import Tokenizer
        except ImportError:
            pass
        else:
            try:
                fast: Any = Tokenizer.from_file(str(folder / "tokenizer.json"))
            except Exception as error:  # noqa: BLE001
                return None, f"tokenizer {folder} did not load ({type(error).__name__}: {error})"

            def count_fast(text: str) -> int:
                return len(fast.encode(text, add_special_tokens=False).ids)

            return count_fast, f"the CLIP tokenizer ({TOKENIZERS[0].repo_id}, tokenizers)"
    return None, "neither transformers nor tokenizers is installed"

"""`swimlatent tokenizers [--from-bpe FILE | --import DIR | --fetch] [--force]`: fill the CLIP tokenizer
cache (``<workdir>/cache/tokenizers``) that sd-scripts reads, or, with no option, say whether it is
complete (exit 0) or what is missing (exit 1). The work is in ``stages.tokenizers``."""

from __future__ import annotations

from pathlib import Path

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.stages import tokenizers
from swimlatent_wrap.workdir import Workdir


def run(args) -> int:
    cache = Workdir(args.workdir).tokenizer_cache()
    if args.from_bpe:
        written = tokenizers.build_from_bpe(Path(args.from_bpe).expanduser(), cache, force=args.force)
    elif args.import_dir:
        written = tokenizers.import_folder(Path(args.import_dir).expanduser(), cache, force=args.force)
    elif args.fetch:
        written = tokenizers.fetch(cache, force=args.force)
    else:  # --force alone is a usage error (cli.check_usage)
        problem = tokenizers.cache_problem(cache)
        if problem:
            raise UserError(problem)
        print(f"tokenizer cache {cache} is complete ({', '.join(tokenizers.TOKENIZER_FOLDERS)})")
        return 0
    for folder in written:
        print(f"wrote {folder}")
    kept = [cache / name for name in tokenizers.TOKENIZER_FOLDERS if cache / name not in written]
    for folder in kept:
        print(f"kept {folder} (already complete; --force replaces it)")
    return 0

"""`swimlatent tag RECIPE` | `swimlatent tag --images DIR [--model M]`: WD14 captions beside each image
(swimlatent_wrap.stages.tag); the flags override the recipe's [captions] values."""

from __future__ import annotations

import argparse
from pathlib import Path

from swimlatent_wrap.recipe import load_recipe
from swimlatent_wrap.stages.tag import CaptionOverrides, tag_dataset, tag_images
from swimlatent_wrap.workdir import Workdir


def run(args: argparse.Namespace) -> int:
    # RECIPE xor --images and the flags' ranges are checked with the command line (cli.check_usage)
    if args.recipe:
        tag_dataset(load_recipe(args.recipe), Workdir(args.workdir), force=args.force, overrides=overrides(args))
    else:
        tag_images(Path(args.images), force=args.force, overrides=overrides(args))
    return 0


def overrides(args: argparse.Namespace) -> CaptionOverrides:
    """The [captions] values given as flags ("a, b" lists split into tags)."""
    return CaptionOverrides(model=args.model, prefix=tag_list(args.prefix), general_threshold=args.general_threshold,
                            character_threshold=args.character_threshold, blacklist=tag_list(args.blacklist),
                            rating_tag=True if args.rating_tag else None, batch_size=args.batch_size,
                            resize=args.resize)


def tag_list(text: str | None) -> tuple[str, ...] | None:
    """'a, b' → ("a", "b"); "" → () (no tags); None → not given."""
    return None if text is None else tuple(tag.strip() for tag in text.split(",") if tag.strip())

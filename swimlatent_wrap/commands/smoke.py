"""`swimlatent smoke RECIPE [--size PX] [--images DIR] [--keep] [--cpu]`: one real sd-scripts step of
every stage the recipe needs (swimlatent_wrap.stages.smoke); one line per stage, exit 1 if any failed."""

from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from swimlatent_wrap.stages.smoke import smoke
    from swimlatent_wrap.workdir import Workdir

    outcomes = smoke(Path(args.recipe), workdir=Workdir(args.workdir), sd_scripts=args.sd_scripts, size=args.size,
                     images=Path(args.images).resolve() if args.images else None, keep=args.keep, force_cpu=args.cpu)
    for outcome in outcomes:
        print(outcome.line(), flush=True)
    return 0 if all(o.status == "ok" for o in outcomes) else 1

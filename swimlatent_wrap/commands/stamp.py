"""`swimlatent stamp MODEL [--out OUT] [--recipe RECIPE] [--set KEY=VALUE ...]`: ModelSpec metadata
written into the header only (in place when it fits, else a streamed copy and a rename)."""

from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from swimlatent_wrap.modelspec.spec import parse_assignments
    from swimlatent_wrap.recipe import load_recipe
    from swimlatent_wrap.stages.stamp import stamp_model

    assignments = parse_assignments(list(args.assignments or []))
    recipe = load_recipe(args.recipe) if args.recipe else None
    out = Path(args.out).expanduser().resolve() if args.out else None
    result = stamp_model(Path(args.model).expanduser(), out=out, recipe=recipe, assignments=assignments)
    if result.recovery:
        print(result.recovery)
    print(f"stamped {result.path} ({result.how}; header {result.header_bytes} bytes)")
    print(f"modelspec.title = {result.metadata.get('modelspec.title')}")
    print(f"modelspec.hash_sha256 = {result.metadata['modelspec.hash_sha256']}")
    if result.dropped:
        print("removed (absolute paths or secrets): " + ", ".join(result.dropped))
    return 0

"""`swimlatent stamp MODEL [--out OUT] [--recipe RECIPE] [--set KEY=VALUE ...]`: ModelSpec metadata
written into the header only (in place when it fits, else a streamed copy and a rename)."""

from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from swimlatent_wrap.modelspec.spec import parse_assignments, recipe_values, stamp_file

    assignments = parse_assignments(list(args.assignments or []))
    recipe, strip_paths = None, True
    if args.recipe:
        from swimlatent_wrap.recipe import load_recipe

        loaded = load_recipe(args.recipe)
        recipe = recipe_values(loaded)
        strip_paths = bool(loaded.modelspec.strip_paths)
    out = Path(args.out).expanduser().resolve() if args.out else None
    result = stamp_file(Path(args.model).expanduser(), out=out, recipe=recipe, assignments=assignments,
                        strip_paths=strip_paths)
    if result.recovered:
        print(f"restored the header of {Path(args.model)} that an interrupted stamp had left half-written")
    print(f"stamped {result.path} ({result.how}; header {result.header_bytes} bytes)")
    print(f"modelspec.title = {result.metadata.get('modelspec.title')}")
    print(f"modelspec.hash_sha256 = {result.metadata['modelspec.hash_sha256']}")
    if result.dropped:
        print("removed (absolute paths or secrets): " + ", ".join(result.dropped))
    return 0

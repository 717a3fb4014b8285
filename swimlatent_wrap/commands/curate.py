"""`swimlatent curate`: not built yet (the Danbooru datasets issue)."""

from swimlatent_wrap.errors import UserError


def run(args) -> int:
    raise UserError("swimlatent curate is not built yet (Danbooru datasets issue); nothing was done")

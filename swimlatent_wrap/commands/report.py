"""`swimlatent report`: not built yet (the Danbooru datasets issue)."""

from swimlatent_wrap.errors import UserError


def run(args) -> int:
    raise UserError("swimlatent report is not built yet (Danbooru datasets issue); nothing was done")

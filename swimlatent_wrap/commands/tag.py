"""`swimlatent tag`: not built yet (the captions issue)."""

from swimlatent_wrap.errors import UserError


def run(args) -> int:
    raise UserError("swimlatent tag is not built yet (captions issue); nothing was done")

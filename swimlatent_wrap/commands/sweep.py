"""`swimlatent sweep`: not built yet (the release issue)."""

from swimlatent_wrap.errors import UserError


def run(args) -> int:
    raise UserError("swimlatent sweep is not built yet (release issue); nothing was done")

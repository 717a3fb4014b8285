"""`swimlatent run`: not built yet (the training stages issue)."""

from swimlatent_wrap.errors import UserError


def run(args) -> int:
    raise UserError("swimlatent run is not built yet (training stages issue); nothing was done")

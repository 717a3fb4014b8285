"""The one error type for expected failures: printed as one line per problem, exit code 1."""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can fix: bad input, a missing file, a server refusing us, a failed child.

    ``lines`` are printed to stderr one per line, with no traceback. Keep each line self-contained:
    what is wrong, where, and what to do.
    """

    # Printed before each line; recipe problems set "" (their lines already name file and key).
    label = "error: "

    def __init__(self, *lines: str) -> None:
        if not lines:
            raise ValueError("UserError needs at least one line")
        self.lines = [str(line) for line in lines]
        super().__init__("\n".join(self.lines))

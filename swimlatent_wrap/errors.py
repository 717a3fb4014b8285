"""The error types the CLI turns into one line each and an exit code (cli.main):

    UserError          an expected failure the user can fix             exit 1
    UsageError         a command line that cannot work as given          exit 2 (argparse's own usage errors too)
    ReportedInterrupt  a Ctrl-C whose catcher says what it stopped        exit 130 (as every Ctrl-C)

Anything else that reaches cli.main is a bug: one line, the traceback in a log file, exit 3.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can fix: bad input, a missing file, a server refusing us, a failed child.

    ``lines`` are printed to stderr one per line, with no traceback. Keep each line self-contained:
    what is wrong, where, and what to do.
    """

    # Printed before each line; recipe problems set "" (their lines already name file and key).
    label = "error: "
    exit_code = 1

    def __init__(self, *lines: str) -> None:
        if not lines:
            raise ValueError("UserError needs at least one line")
        self.lines = [str(line) for line in lines]
        super().__init__("\n".join(self.lines))


class UsageError(UserError):
    """Options or arguments that do not go together, or a flag's value out of range: the command
    line itself is wrong, whatever the files say. Printed as argparse prints its usage errors
    ("swimlatent CMD: error: …", one line) and exit code 2, argparse's convention."""

    exit_code = 2


class ReportedInterrupt(KeyboardInterrupt):
    """A Ctrl-C (or SIGTERM turned into one) that the code which caught it has explained: ``lines``
    say what was stopped, what was kept and what to run, and are printed instead of the CLI's
    generic line. Its wording is the catcher's to get right: a Ctrl-C that came after the work was
    done says so, not "interrupted"."""

    def __init__(self, *lines: str) -> None:
        if not lines:
            raise ValueError("ReportedInterrupt needs at least one line")
        self.lines = [str(line) for line in lines]
        super().__init__("\n".join(self.lines))

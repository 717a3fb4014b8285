"""The README is kept in sync with the code mechanically: CLI reference vs --help, recipe reference
vs the table declarations, the two commands on its first screen."""

from __future__ import annotations

import argparse
import re

from swimlatent_wrap.cli import build_parser
from tests.helpers import REPO, run_cli

README = (REPO / "README.md").read_text(encoding="utf-8")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_cli_reference_lists_every_command_and_option():
    table = README.split("<!-- cli:start -->", 1)[1].split("<!-- cli:end -->", 1)[0]
    rows = {m.group(1): line for line in table.splitlines() if (m := re.match(r"\| `swimlatent (\w+)", line))}
    commands = _subparsers()
    assert set(rows) == set(commands)
    for name, sub in commands.items():
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option not in ("--help", "--workdir", "--sd-scripts"):
                    assert f"`{option}" in rows[name], f"README's CLI reference lacks {option} of {name}"


def test_every_command_has_help():
    for name in _subparsers():
        result = run_cli(name, "--help")
        assert result.returncode == 0 and "usage: swimlatent" in result.stdout


def test_recipe_reference_is_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_readme", REPO / "tools/sync_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.synced(README) == README, "run: python tools/sync_readme.py"


def test_first_screen_has_the_two_commands_and_ci_runs_make_test():
    first_screen = "\n".join(README.splitlines()[:30])
    assert "make base" in first_screen and "make test" in first_screen
    assert "make test" in (REPO / ".ci/run").read_text()

"""Prompt files ([sample] prompts, [sweep] prompts): one prompt per line, `#` comments and blank
lines skipped. sd-scripts reads ` --` inside a line as the start of a prompt option (--w, --n, …),
so a prompt must not contain it: the size, steps, scale and seed come from the recipe."""

from __future__ import annotations

from pathlib import Path


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the line or says it is empty."""


def read_prompts(path: Path) -> list[str]:
    """The prompts of ``path``, in order; PromptFileError when one has ` --` or there are none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PromptFileError(f"cannot read {path}: {error}") from None
    prompts = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if " --" in line:
            raise PromptFileError(f"line {number} contains ' --', which sd-scripts reads as the start of a prompt option; "
                                  "write only the prompt (size, steps and seed come from the recipe)")
        prompts.append(line)
    if not prompts:
        raise PromptFileError("no prompts in it (one per line; # comments and blank lines are skipped)")
    return prompts

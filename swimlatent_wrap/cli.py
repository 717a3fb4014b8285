"""Argument parsing only. Each command lives in ``swimlatent_wrap.commands.<name>`` as ``run(args)``.

Command modules are imported only when their command runs, so ``swimlatent --help`` and
``swimlatent plan`` never pay for onnxruntime, PIL or huggingface_hub.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Sequence

from swimlatent_wrap import __version__
from swimlatent_wrap.errors import UserError

DEFAULT_WORKDIR = "work"
DEFAULT_SD_SCRIPTS = "vendor/sd-scripts"


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """--workdir/--sd-scripts, accepted before or after the command name."""
    common = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    common.add_argument(
        "--workdir",
        metavar="DIR",
        default=default,
        help=f"where datasets, runs, models and releases live (env SWIMLATENT_WORKDIR, default ./{DEFAULT_WORKDIR})",
    )
    common.add_argument(
        "--sd-scripts",
        metavar="DIR",
        dest="sd_scripts",
        default=default,
        help=f"the sd-scripts checkout (env SWIMLATENT_SD_SCRIPTS, default {DEFAULT_SD_SCRIPTS})",
    )
    return common


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _caption_flags(parser: argparse.ArgumentParser) -> None:
    """`tag`'s flags, one per [captions] key, from the table's declarations (name, kind, help, default)."""
    from swimlatent_wrap.recipe.schema import BOOL, FLOAT, INT, ListOf
    from swimlatent_wrap.recipe.tables.captions import TABLE

    for field in TABLE.fields:
        flag = "--" + field.name.replace("_", "-")
        if field.kind is BOOL:
            parser.add_argument(flag, action="store_true", help=field.help)
            continue
        default = f" (default {field.default})" if field.default not in (None, "", []) else ""
        if isinstance(field.kind, ListOf):
            parser.add_argument(flag, metavar='"a, b"', help=f"{field.help}, comma-separated")
        elif field.kind is FLOAT:
            parser.add_argument(flag, type=_float, metavar="F", help=field.help + default)
        elif field.kind is INT:
            parser.add_argument(flag, type=_positive_int, metavar="N", help=field.help + default)
        else:
            parser.add_argument(flag, metavar="M", help=field.help + default)


def build_parser() -> argparse.ArgumentParser:
    common = _global_options(suppress=True)
    parser = argparse.ArgumentParser(
        prog="swimlatent",
        description="Recipe-driven SDXL fine-tuning around kohya-ss/sd-scripts: "
        "collect → tag → train (base, ft, lora) → sweep → merge → stamp.",
        parents=[_global_options(suppress=False)],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"swimlatent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common], allow_abbrev=False)

    p = command("validate", "check recipes; every problem on its own line as <file>: <table.key>: <message>")
    p.add_argument("recipes", nargs="+", metavar="RECIPE")

    p = command("plan", "write the exact sd-scripts launch for a recipe (argv.json, args.toml, dataset.toml, command.sh)")
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the plan into")

    p = command("collect", "download the recipe's Danbooru dataset (resumable, md5-verified)")
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="cap the total number of images, keeping the rating split")

    p = command("report", "summarise a collected dataset (terminal table + HTML page)")
    p.add_argument("recipe", metavar="RECIPE")

    p = command("curate", "propose the subset of a dataset that a recipe trains on, with an HTML contact sheet")
    p.add_argument("recipe", metavar="RECIPE")

    p = command("tag", "caption images with the WD14 tagger (a recipe's dataset, or --images DIR --model M)")
    p.add_argument("recipe", nargs="?", metavar="RECIPE")
    p.add_argument("--images", metavar="DIR", help="caption every image in this folder instead of a recipe's dataset")
    _caption_flags(p)
    p.add_argument("--force", action="store_true", help="re-caption images that already have a caption")

    p = command("train", "plan, preflight, run the stage's sd-scripts script, verify and place the output")
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--dry-run", action="store_true", help="print the command and the generated files, then stop")
    p.add_argument("--resume", action="store_true", help="continue from the latest saved training state")
    p.add_argument("--allow-cpu", action="store_true", help="skip the CUDA preflight (stand-in scripts and tests)")

    p = command("smoke", "train every stage a recipe needs for one step with the real sd-scripts, small and in a "
                "throwaway workdir; one line per stage")
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--size", type=_positive_int, default=256, metavar="PX", help="training and sweep size (default 256)")
    p.add_argument("--images", metavar="DIR", help="captioned images to use instead of each stage's own dataset")
    p.add_argument("--keep", action="store_true", help="keep the throwaway workdir (under <workdir>/smoke/)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if a CUDA GPU is visible")

    p = command("run", "every step of a recipe's stage (collect, tag, train, …), skipping what is done")
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--allow-cpu", action="store_true", help="skip the CUDA preflight (stand-in scripts and tests)")

    p = command("sweep", "generate images at several LoRA ratios and a labelled grid.png")
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--dry-run", action="store_true", help="print the commands, then stop")
    p.add_argument("--allow-cpu", action="store_true", help="skip the CUDA preflight (stand-in scripts and tests)")

    p = command("merge", "merge the LoRA into the model at the recipe's ratio and verify the merge")
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--dry-run", action="store_true", help="print the command, then stop")

    p = command("stamp", "write Stability AI ModelSpec metadata into a .safetensors file")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--out", metavar="OUT", help="write a stamped copy here instead of stamping MODEL in place")
    p.add_argument("--recipe", metavar="RECIPE", help="take values from this recipe's [modelspec] table")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assignments",
                   help='a ModelSpec value, key without the "modelspec." prefix (repeatable)')

    p = command("inspect", "show (and verify) a .safetensors file's metadata")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--verify", action="store_true", help="recompute modelspec.hash_sha256 and compare")

    p = command("tokenizers", "fill (or check) the CLIP tokenizer cache that training reads, so it never waits on a download")
    fill = p.add_mutually_exclusive_group()
    fill.add_argument("--from-bpe", metavar="FILE", dest="from_bpe",
                      help="build both from CLIP's BPE file (open_clip's bpe_simple_vocab_16e6.txt.gz)")
    fill.add_argument("--import", metavar="DIR", dest="import_dir",
                      help="copy them from another machine's tokenizer cache or Hugging Face hub cache")
    fill.add_argument("--fetch", action="store_true", help="download them once from the Hugging Face Hub")
    p.add_argument("--force", action="store_true", help="replace folders that are already complete")

    return parser


def _resolve_globals(args: argparse.Namespace) -> None:
    workdir = args.workdir or os.environ.get("SWIMLATENT_WORKDIR") or DEFAULT_WORKDIR
    sd_scripts = args.sd_scripts or os.environ.get("SWIMLATENT_SD_SCRIPTS") or DEFAULT_SD_SCRIPTS
    args.workdir = Path(workdir).expanduser().resolve()
    args.sd_scripts = Path(sd_scripts).expanduser().resolve()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _resolve_globals(args)
    try:
        module = importlib.import_module(f"swimlatent_wrap.commands.{args.command}")
        return int(module.run(args) or 0)
    except UserError as error:
        for line in error.lines:
            print(f"{error.label}{line}", file=sys.stderr)
        return 1
    except OSError as error:
        # a file or folder the command needed: permission denied, disk full, not a directory, …
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        print(f"error: {error.strerror or error}{where}; nothing half-written was left in place", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"swimlatent {args.command}: interrupted; what was finished is kept, run it again to go on", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

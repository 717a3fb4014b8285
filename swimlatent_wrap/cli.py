"""Argument parsing, and the one place a command's outcome becomes an exit status and a line on
stderr. Each command lives in ``swimlatent_wrap.commands.<name>`` as ``run(args)``.

Command modules are imported only when their command runs, so ``swimlatent --help`` and
``swimlatent plan`` never pay for onnxruntime, PIL or huggingface_hub.

Exit status: 0 ok; 1 a user-facing error (UserError, or a file the command could not read or
write), one line per problem; 2 a usage error (argparse's, or a UsageError), one line;
3 an unexpected exception (a bug), one line saying where its traceback was written
(``<workdir>/logs/crash-<time>.log``, else a temp file); 130 Ctrl-C, one line that says what it
stopped: nothing before the command started, "interrupted" while it ran, nothing after it ended.
"""

from __future__ import annotations

import sys

try:  # a Ctrl-C while Python loads the CLI itself: the command has not started
    import argparse
    import importlib
    import os
    import signal
    from dataclasses import dataclass, field
    from pathlib import Path
    from types import FrameType
    from typing import NoReturn, Sequence

    from swimlatent_wrap import __version__
    from swimlatent_wrap.errors import ReportedInterrupt, UsageError, UserError
except KeyboardInterrupt:
    sys.stderr.write("swimlatent: stopped by Ctrl-C before it started; nothing was done\n")
    raise SystemExit(130) from None

DEFAULT_WORKDIR = "work"
DEFAULT_SD_SCRIPTS = "vendor/sd-scripts"


def usage_line(prog: str, message: str) -> str:
    """A usage error as one line, argparse's words plus where the usage is."""
    return f"{prog}: error: {message} (`{prog} --help` shows the usage)"


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (exit 2): the full usage is one --help away."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, usage_line(self.prog, message) + "\n")


def _global_options(suppress: bool) -> _Parser:
    """--workdir/--sd-scripts, accepted before or after the command name."""
    common = _Parser(add_help=False)
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
    from swimlatent_wrap.recipe.schema import BOOL, FLOAT, INT, Choice, ListOf
    from swimlatent_wrap.recipe.tables.captions import TABLE

    for field in TABLE.fields:
        flag = "--" + field.name.replace("_", "-")
        if field.kind is BOOL:
            parser.add_argument(flag, action="store_true", help=field.help)
            continue
        default = f" (default {field.default})" if field.default not in (None, "", []) else ""
        if isinstance(field.kind, Choice):
            parser.add_argument(flag, choices=field.kind.choices, help=field.help + default)
        elif isinstance(field.kind, ListOf):
            parser.add_argument(flag, metavar='"a, b"', help=f"{field.help}, comma-separated")
        elif field.kind is FLOAT:
            parser.add_argument(flag, type=_float, metavar="F", help=field.help + default)
        elif field.kind is INT:
            parser.add_argument(flag, type=_positive_int, metavar="N", help=field.help + default)
        else:
            parser.add_argument(flag, metavar="M", help=field.help + default)


def build_parser() -> argparse.ArgumentParser:
    common = _global_options(suppress=True)
    parser = _Parser(
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


def check_usage(args: argparse.Namespace) -> None:
    """What argparse cannot say about a command line: options that do not go together, a flag's
    value outside what its [table] key allows. A UsageError (exit 2), before anything runs."""
    if args.command == "tag":
        if args.recipe and args.images:
            raise UsageError("give a RECIPE or --images DIR, not both")
        if not args.recipe and not args.images:
            raise UsageError("give a RECIPE, or --images DIR [--model M] to caption any folder")
        from swimlatent_wrap.recipe.schema import FLOAT, INT, ListOf
        from swimlatent_wrap.recipe.tables.captions import TABLE

        for declared in TABLE.fields:  # the same checks as the recipe's [captions] keys
            value = getattr(args, declared.name, None)
            if declared.check is None or value is None:
                continue
            if isinstance(declared.kind, ListOf):  # "a, b" on the command line
                from swimlatent_wrap.commands.tag import tag_list

                value = tag_list(value)
            elif declared.kind not in (FLOAT, INT):
                continue
            problem = declared.check(value)
            if problem:
                raise UsageError(f"--{declared.name.replace('_', '-')} {problem}")
    elif args.command == "tokenizers":
        if args.force and not (args.from_bpe or args.import_dir or args.fetch):
            raise UsageError("--force goes with --from-bpe, --import or --fetch")


# --------------------------------------------------------------------------------------------
# The outcome: exit status and its line(s)

STARTING, RUNNING, ENDED = "starting", "running", "ended"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass
class _Session:
    argv: list[str]
    command: str | None = None
    workdir: Path | None = None
    phase: str = STARTING
    code: int = 0  # what the command returned, once it has

    @property
    def prog(self) -> str:
        return f"swimlatent {self.command}" if self.command else "swimlatent"


@dataclass
class _Outcome:
    code: int
    lines: list[str] = field(default_factory=list)


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: parse, run the command, turn what came of it into an exit status and one line.

    ``argv`` None means this is the program itself (the console script, ``python -m``): then a
    Ctrl-C after the command ended is answered by a signal handler that exits at once, so nothing
    of Python's own shutdown (flushing a stdout pipe nobody reads, joining threads) can hang or
    print a traceback. A caller passing ``argv`` keeps its own signal handling."""
    session = _Session(list(sys.argv[1:] if argv is None else argv))
    if argv is None:
        _restore_ctrl_c()  # a second main() in one process: Ctrl-C interrupts its command again
    try:
        outcome = _outcome(session)
    except KeyboardInterrupt as stop:  # a Ctrl-C landing in the handlers of _outcome
        outcome = _interrupted(stop, session)
    session.phase = ENDED
    return _end(outcome, session, program=argv is None)


def _outcome(session: _Session) -> _Outcome:
    try:
        args = build_parser().parse_args(session.argv)
        session.command = args.command
        _resolve_globals(args)
        session.workdir = args.workdir
        check_usage(args)
        module = importlib.import_module(f"swimlatent_wrap.commands.{args.command}")
        session.phase = RUNNING
        session.code = int(module.run(args) or 0)
        session.phase = ENDED
        return _Outcome(session.code)
    except UsageError as error:
        return _Outcome(error.exit_code, [usage_line(session.prog, line) for line in error.lines])
    except UserError as error:
        return _Outcome(error.exit_code, [f"{error.label}{line}" for line in error.lines])
    except OSError as error:
        # a file or folder the command needed: permission denied, disk full, not a directory, …
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        return _Outcome(EXIT_ERROR, [f"error: {error.strerror or error}{where}; nothing half-written was left in place"])
    except KeyboardInterrupt as stop:
        return _interrupted(stop, session)
    except Exception as error:  # the last resort: a bug, reported in one line, its traceback in a file
        return _crashed(error, session)


def _interrupted(stop: KeyboardInterrupt, session: _Session) -> _Outcome:
    """Ctrl-C (or SIGTERM, which the long-running stages turn into one): say what it stopped."""
    if isinstance(stop, ReportedInterrupt):  # the code that caught it said what it stopped and kept
        return _Outcome(EXIT_INTERRUPTED, [f"{session.prog}: {line}" for line in stop.lines])
    if session.phase == STARTING:
        return _Outcome(EXIT_INTERRUPTED, [f"{session.prog}: stopped by Ctrl-C before it started; nothing was done"])
    if session.phase == ENDED:
        return _Outcome(EXIT_INTERRUPTED, [_after_the_end(session, session.code)])
    return _Outcome(EXIT_INTERRUPTED, [f"{session.prog}: interrupted; what was finished is kept, run it again to go on"])


def _after_the_end(session: _Session, code: int) -> str:
    if code == EXIT_OK:
        return f"{session.prog}: it had finished when Ctrl-C came; nothing was interrupted"
    return f"{session.prog}: it had already stopped (exit status {code}) when Ctrl-C came; nothing was interrupted"


def _end(outcome: _Outcome, session: _Session, *, program: bool) -> int:
    """Print the outcome's lines and flush what the command printed: from here on a Ctrl-C
    interrupts nothing, and says so."""
    if program:
        _answer_late_ctrl_c(_after_the_end(session, outcome.code))
    try:
        for line in outcome.lines:
            print(line, file=sys.stderr)
        sys.stdout.flush()  # a command's output held in the buffer of a pipe goes out now, not at exit
        sys.stderr.flush()
    except KeyboardInterrupt:  # a caller's own handling (argv given): the same words, no exit of ours
        print(_after_the_end(session, outcome.code), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `swimlatent inspect MODEL | head`: the reader left; nothing more to say to it
        _stdout_to_devnull()
    return outcome.code


def _answer_late_ctrl_c(line: str) -> None:
    """From now until the process is gone, Ctrl-C prints ``line`` and exits 130 at once (only where
    Python's default handler is in place: a background job that ignores SIGINT keeps ignoring it)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return

    def late(signum: int, frame: FrameType | None) -> None:
        try:
            os.write(2, (line + "\n").encode(errors="replace"))
        except OSError:
            pass
        _stdout_to_devnull()
        os._exit(EXIT_INTERRUPTED)

    _late_handlers.append(late)
    signal.signal(signal.SIGINT, late)


_late_handlers: list[object] = []


def _restore_ctrl_c() -> None:
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in _late_handlers:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _late_handlers.clear()


def _stdout_to_devnull() -> None:
    """Point stdout's descriptor at /dev/null, so what is still buffered for it is dropped instead
    of blocking (a full pipe) or failing (a closed one) when Python flushes it at exit."""
    try:
        target = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, target)
        os.close(null)
    except (OSError, ValueError):
        pass


def _crashed(error: Exception, session: _Session) -> _Outcome:
    """An exception no command expected: one line naming it and the file with its traceback."""
    import traceback

    from swimlatent_wrap.secrets import redact, secret_values

    secrets = secret_values()
    summary = redact(f"{type(error).__name__}: {error}", secrets).strip().splitlines() or [type(error).__name__]
    first = summary[0] if len(summary[0]) <= 300 else summary[0][:297] + "..."
    report = redact(_crash_report(error, session, traceback.format_exception(error)), secrets)
    path = _write_crash_log(report, session.workdir)
    if path is None:  # nowhere to write it: the traceback goes to stderr rather than nowhere
        return _Outcome(EXIT_UNEXPECTED, [f"{session.prog}: unexpected error: {first}; no crash log could be written, "
                                          f"so its traceback follows", *report.rstrip("\n").splitlines()])
    return _Outcome(EXIT_UNEXPECTED, [f"{session.prog}: unexpected error: {first}; the full traceback is in {path} "
                                      f"(please attach it when you report this)"])


def _crash_report(error: Exception, session: _Session, trace: list[str]) -> str:
    import datetime
    import platform
    import shlex

    return "".join([
        f"swimlatent {__version__} crashed at {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n",
        f"command: swimlatent {shlex.join(session.argv)}\n",
        f"phase: {session.phase}\n",
        f"python: {sys.executable} {platform.python_version()} ({platform.platform()})\n",
        f"cwd: {os.getcwd()}\n\n",
        *trace,
    ])


def _write_crash_log(report: str, workdir: Path | None) -> Path | None:
    """<workdir>/logs/crash-<time>.log, else a temp file; None when neither can be written."""
    import datetime
    import tempfile

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if workdir is not None:
        try:
            logs = workdir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            for attempt in range(100):
                path = logs / (f"crash-{stamp}.log" if attempt == 0 else f"crash-{stamp}-{attempt}.log")
                try:
                    with open(path, "x", encoding="utf-8") as handle:
                        handle.write(report)
                    return path
                except FileExistsError:
                    continue
        except OSError:
            pass
    try:
        descriptor, name = tempfile.mkstemp(prefix=f"swimlatent-crash-{stamp}-", suffix=".log")
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(report)
        return Path(name)
    except OSError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())

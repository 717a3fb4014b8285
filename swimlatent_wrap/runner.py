"""The one module that starts processes (DESIGN.md "runner"; STYLE.md practice 5).

    run(argv, *, log_path, cwd=None, env=None) -> None     a long child (training, merging)
    probe(argv, *, cwd=None, env=None, timeout=60) -> Probe a short question (git, nvidia-smi, torch)

Rules kept here and nowhere else:
- argv lists only, never a shell;
- the command is logged first as one shell-quoted line, secrets redacted;
- the child's output goes to the console and to the log as it comes (progress bars included);
- the child runs in its own process group, so the terminal's Ctrl-C reaches only us: we forward
  SIGINT to the whole group (the accelerate launcher and the training script), wait, then SIGTERM,
  wait, then SIGKILL. sd-scripts at the pinned commit does not catch KeyboardInterrupt, so what
  survives an interruption is the last periodic ``--save_state`` folder; forwarding SIGINT still
  lets it stop cleanly (data-loader workers, trackers) instead of being killed mid-write;
- a non-zero exit becomes one ``RunFailed`` (a ``UserError``): the command, the exit code and the
  log's last lines. An interruption ends as ``Interrupted`` (a ``KeyboardInterrupt``), after the
  child's whole group is gone.
"""

from __future__ import annotations

import collections
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, BinaryIO, Callable, Iterable, Mapping, Sequence

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.secrets import REDACTED, is_secret_name, redact, secret_values

# Seconds the child gets to stop after SIGINT, then after SIGTERM, before the next signal.
INTERRUPT_GRACE_S = 60.0
TERMINATE_GRACE_S = 15.0
# Seconds we wait for stragglers of the group (e.g. a launcher's child) after the direct child exited.
STRAGGLER_GRACE_S = 10.0
TAIL_LINES = 20



# The last line of a Python traceback: "ValueError: …", "AssertionError", "library.x.SomeError: …".
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Invalid)(?::\s.*)?$")
# accelerate's launcher re-raises the script's failure as its own traceback, after the script's.
_LAUNCHER_EXCEPTIONS = ("subprocess.CalledProcessError",)


def _script_error_index(lines: Sequence[str]) -> int | None:
    for index in range(len(lines) - 1, -1, -1):
        text = lines[index].strip()
        if _EXCEPTION_LINE.match(text) and not text.startswith(_LAUNCHER_EXCEPTIONS):
            return index
    return None


def script_error(lines: Sequence[str]) -> str | None:
    """The failed script's own last exception line, not the launcher's that follows it."""
    index = _script_error_index(lines)
    return lines[index].strip() if index is not None else None


def script_tail(lines: Sequence[str], count: int = TAIL_LINES) -> list[str]:
    """The last ``count`` lines up to the script's own exception line: the launcher's traceback that
    follows it (accelerate re-raising the exit status) stays in the log file only."""
    index = _script_error_index(lines)
    if index is not None and any(line.strip().startswith(_LAUNCHER_EXCEPTIONS) for line in lines[index + 1:]):
        lines = lines[: index + 1]
    return list(lines[-count:])


def _log_tail_lines(log_path: Path, start: int = 0, limit: int = 400) -> list[str]:
    """The child's last lines in the log, from byte ``start`` (this run's output; the log may hold
    earlier runs), without the wrapper's own ``[swimlatent]`` notes."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(start, handle.tell() - 256 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [part.split("\r")[-1] for part in text.splitlines()]
    return [line for line in lines if not line.startswith("[swimlatent] ")][-limit:]


class RunFailed(UserError):
    """A child exited non-zero (or died by a signal we did not send). The first line says why when
    the script printed an exception (``cause``), then the command and the log's last lines."""

    def __init__(self, argv: Sequence[str], returncode: int, log_path: Path, tail: Sequence[str], secrets: Iterable[str] = (),
                 log_start: int = 0) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.log_path = log_path
        logged = [line for line in _log_tail_lines(log_path, log_start) if line.strip()] or list(tail)
        self.cause = script_error(logged)
        self.tail = script_tail(logged, len(tail)) if tail else []
        name = Path(argv[0]).name if argv else "command"
        because = f": {self.cause}" if self.cause else ""
        lines = [
            f"{_program_name(argv)} failed ({describe_exit(returncode)}){because}; full log: {log_path}",
            # one line per line of the error: a newline inside an argument (python -c) is shown as \n
            "command: " + format_command(argv, secrets).replace("\n", "\\n"),
        ]
        if self.tail:
            lines.append(f"last {len(self.tail)} lines of the log:")
            lines.extend(f"  | {line}" for line in self.tail)
        else:
            lines.append(f"{name} printed nothing")
        super().__init__(*lines)


class Interrupted(KeyboardInterrupt):
    """We were interrupted (Ctrl-C or SIGTERM) while a child ran; the child's group is gone now."""

    def __init__(self, argv: Sequence[str], returncode: int | None, log_path: Path | None) -> None:
        super().__init__(f"interrupted: {describe_exit(returncode) if returncode is not None else 'no exit status'}")
        self.argv = list(argv)
        self.returncode = returncode
        self.log_path = log_path


@dataclass(frozen=True)
class Probe:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# --------------------------------------------------------------------------------------------
# Secrets


def _is_secret_option(text: str) -> bool:
    return text.startswith("-") and is_secret_name(text.lstrip("-").split("=", 1)[0])


def redact_argv(argv: Sequence[str], secrets: Iterable[str] = ()) -> list[str]:
    """argv with secret option values and known secret strings replaced by ***."""
    secrets = [s for s in secrets if s]
    out: list[str] = []
    hide_next = False
    for item in argv:
        item = str(item)
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if _is_secret_option(item):
            if "=" in item:
                out.append(item.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(item)
                hide_next = True
            continue
        out.append(redact(item, secrets))
    return out


def format_command(argv: Sequence[str], secrets: Iterable[str] | None = None) -> str:
    """One shell-quoted, secret-redacted line (for logs, errors, --dry-run)."""
    if secrets is None:
        secrets = secret_values()
    return shlex.join(redact_argv(argv, secrets))


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    if returncode > 128 and returncode - 128 in {s.value for s in signal.Signals}:
        return f"exit code {returncode} ({signal.Signals(returncode - 128).name})"
    return f"exit code {returncode}"


def _program_name(argv: Sequence[str]) -> str:
    """The script a launcher runs (sdxl_train.py), else the program's file name."""
    for item in argv[1:]:
        if str(item).endswith(".py"):
            return Path(str(item)).name
    if len(argv) > 2 and argv[1] == "-m":
        return str(argv[2])
    return Path(str(argv[0])).name if argv else "command"


# --------------------------------------------------------------------------------------------
# Output pump: console + log, line-aware so redaction and the tail see whole lines


class _Pump(threading.Thread):
    def __init__(self, source: IO[bytes], log: BinaryIO, console: BinaryIO | None, secrets: list[str]) -> None:
        super().__init__(name="swimlatent-runner-pump", daemon=True)
        self.source = source
        self.log = log
        self.console = console
        self.secrets = [s.encode() for s in secrets]
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._partial = b""
        self._line, self._carriage = "", False

    def _redact(self, chunk: bytes) -> bytes:
        for secret in self.secrets:
            chunk = chunk.replace(secret, REDACTED.encode())
        return chunk

    def _emit(self, chunk: bytes) -> None:
        self.log.write(chunk)
        self.log.flush()
        if self.console is not None:
            try:
                self.console.write(chunk)
                self.console.flush()
            except (OSError, ValueError):
                self.console = None  # console gone (closed pipe): keep logging

    def _remember(self, chunk: bytes) -> None:
        """Keep the last lines as a terminal shows them: a progress bar redrawn with \r is one line."""
        for part in re.split(r"(\r|\n)", chunk.decode("utf-8", "replace")):
            if part == "\n":
                self._end_line()
            elif part == "\r":
                self._carriage = True
            elif part:
                self._line = part if self._carriage else self._line + part
                self._carriage = False

    def _end_line(self) -> None:
        if self._line.strip():
            self.tail.append(self._line.rstrip())
        self._line, self._carriage = "", False

    def run(self) -> None:
        fd = self.source.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            data = self._partial + data
            # Emit everything up to the last line end; hold the rest so a secret split across two
            # reads is still redacted (a long unterminated run is flushed as it is).
            cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
            if cut < 0 and len(data) < 8192:
                self._partial = data
                continue
            complete, self._partial = (data, b"") if cut < 0 else (data[: cut + 1], data[cut + 1 :])
            complete = self._redact(complete)
            self._emit(complete)
            self._remember(complete)
        if self._partial:
            rest = self._redact(self._partial)
            self._emit(rest + b"\n")
            self._remember(rest)
            self._partial = b""
        self._end_line()


def _console() -> BinaryIO | None:
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        try:
            stream.flush()
        except (OSError, ValueError):
            return None
        return buffer
    return None


# --------------------------------------------------------------------------------------------
# Process group handling


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# What signal.signal() takes and returns (typeshed's private signal._HANDLER).
_SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class _Wake(BaseException):
    """Raised by our signal handler to end a wait (never escapes the runner)."""


class _Signals:
    """While a child runs: Ctrl-C (SIGINT), SIGTERM and SIGHUP sent to us are recorded, from before the
    child starts until it is gone, so none is lost between two statements; they interrupt only
    the wait for the child (``wait``), and a second one while the group is being stopped moves to
    the next, harder signal. Handlers are ours only in the main thread and only where Python's
    defaults were in place (a SIGINT ignored by our parent stays ignored)."""

    def __init__(self) -> None:
        self.received: list[signal.Signals] = []
        self.armed = False
        self.previous: dict[signal.Signals, _SignalHandler] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                                 (signal.SIGHUP, signal.SIG_DFL)):  # SIGHUP: the terminal closed
                if signal.getsignal(sig) is default:
                    self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handler(self, signum, frame) -> None:
        self.received.append(signal.Signals(signum))
        if self.armed:
            self.armed = False
            raise _Wake()

    def wait(self, proc: subprocess.Popen) -> signal.Signals | None:
        """Wait for the child; the first signal received instead, if one came."""
        self.armed = True
        try:
            if not self.received:
                proc.wait()
        except _Wake:
            pass
        except KeyboardInterrupt:  # our handler is not installed (not the main thread)
            self.received.append(signal.SIGINT)
        finally:
            self.armed = False
        return self.received[0] if self.received else None


def _wait_group(proc: subprocess.Popen, pump: _Pump, deadline: float, signals: _Signals | None = None) -> bool:
    """Wait until the direct child has exited, the group's output is closed and no member is
    left; False on timeout, or as soon as one more signal reaches us (escalate now)."""
    seen = len(signals.received) if signals else 0
    while time.monotonic() < deadline:
        if signals and len(signals.received) > seen:
            return False
        if proc.poll() is not None and not pump.is_alive():
            if not _group_alive(proc.pid):
                return True
            # Output closed but a member is still there (a zombie waiting for its reaper, or a
            # daemon that closed stdout): give it the rest of the deadline.
            time.sleep(0.05)
            continue
        pump.join(timeout=0.05)
    return proc.poll() is not None and not pump.is_alive() and not _group_alive(proc.pid)


def _stop_group(proc: subprocess.Popen, pump: _Pump, log: BinaryIO, first: signal.Signals, signals: _Signals,
                interrupt_grace: float, terminate_grace: float) -> None:
    """SIGINT → wait → SIGTERM → wait → SIGKILL, on the child's whole process group; another
    Ctrl-C while waiting skips to the next signal."""
    ladder = [(signal.SIGINT, interrupt_grace), (signal.SIGTERM, terminate_grace), (signal.SIGKILL, 5.0)]
    for sig, grace in ladder[0 if first == signal.SIGINT else 1:]:
        if proc.poll() is not None and not _group_alive(proc.pid):
            break
        note = f"\n[swimlatent] sending {sig.name} to the training process group; waiting up to {grace:.0f} s\n"
        try:
            log.write(note.encode())
            log.flush()
            sys.stderr.write(note)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        _signal_group(proc.pid, sig)
        if _wait_group(proc, pump, time.monotonic() + grace, signals):
            break
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        pass
    pump.join(timeout=2.0)


# --------------------------------------------------------------------------------------------
# Public API


def run(
    argv: list[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: dict | None = None,
    interrupt_grace: float = INTERRUPT_GRACE_S,
    terminate_grace: float = TERMINATE_GRACE_S,
    echo: bool = True,
    env_shown: dict[str, str] | None = None,
) -> None:
    """Run ``argv`` to completion, streaming its output to the console and ``log_path`` (appended).

    ``env`` replaces the environment when given (merge ``os.environ`` yourself to extend it);
    ``env_shown``: the variables the caller added, logged with the command as `env K=V … argv`.
    Raises ``RunFailed`` on a non-zero exit, ``UserError`` if the program cannot be started, and
    ``Interrupted`` after forwarding Ctrl-C/SIGTERM and seeing the child's group gone.
    """
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ValueError("run() needs a non-empty argv")
    secrets = secret_values(env)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # the variables the caller added to the environment are part of the command a user would rerun
    shown = ["env", *(f"{k}={v}" for k, v in env_shown.items()), *argv] if env_shown else argv
    command = format_command(shown, secrets)
    console = _console() if echo else None
    with open(log_path, "ab") as log:
        header = f"$ {command}\n" + (f"# cwd: {cwd}\n" if cwd else "")
        log.write(header.encode())
        log.flush()
        output_start = log.tell()
        if console is not None:
            console.write(header.encode())
            console.flush()
        with _Signals() as signals:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=os.fspath(cwd) if cwd else None,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: Ctrl-C reaches us, we forward it
                )
            except FileNotFoundError:
                raise UserError(f"cannot start {argv[0]!r}: no such program (command: {command})") from None
            except PermissionError:
                raise UserError(f"cannot start {argv[0]!r}: not executable (command: {command})") from None
            assert proc.stdout is not None  # stdout=PIPE
            pump = _Pump(proc.stdout, log, console, secrets)
            try:
                pump.start()
                interrupted_by = signals.wait(proc)
                if interrupted_by is not None:
                    _stop_group(proc, pump, log, interrupted_by, signals, interrupt_grace, terminate_grace)
                elif not _wait_group(proc, pump, time.monotonic() + STRAGGLER_GRACE_S):
                    # The direct child is done but something it started still holds the group.
                    _stop_group(proc, pump, log, signal.SIGTERM, signals, 0.0, terminate_grace)
            finally:
                if proc.poll() is None:  # an exception we did not plan for: never leave it running
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                pump.join(timeout=2.0)
                if proc.stdout is not None:
                    proc.stdout.close()
            late = signals.received and interrupted_by is None
        footer = f"[swimlatent] {_program_name(argv)}: {describe_exit(proc.returncode)}\n"
        log.write(footer.encode())
        log.flush()
    if interrupted_by is not None:
        raise Interrupted(argv, proc.returncode, log_path)
    if late:  # Ctrl-C after the child had finished on its own: not ours to swallow
        raise KeyboardInterrupt
    if proc.returncode != 0:
        raise RunFailed(argv, proc.returncode, log_path, list(pump.tail), secrets, output_start)


def probe(argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> Probe:
    """Run a short command and capture its output. A missing program is exit code 127, a timeout
    124 (the child is killed); never raises for the child's own failure."""
    argv = [os.fspath(a) for a in argv]
    try:
        done = subprocess.run(
            argv,
            cwd=os.fspath(cwd) if cwd else None,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            start_new_session=True,
        )
    except FileNotFoundError:
        return Probe(127, "", f"{argv[0]}: not found")
    except PermissionError:
        return Probe(126, "", f"{argv[0]}: not executable")
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        return Probe(124, out, f"{argv[0]}: no answer within {timeout:.0f} s")
    return Probe(done.returncode, done.stdout, done.stderr)

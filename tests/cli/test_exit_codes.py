"""The CLI's exit statuses and the one line each ends with, through the real CLI in a child process:
0 ok, 1 error, 2 usage, 3 unexpected (traceback in a crash log), 130 Ctrl-C.

The Ctrl-C tests send SIGINT at a point the child itself announces: a stand-in module on the
child's PYTHONPATH (a slow import: `tomllib` during start-up, Pillow while `stamp` works) prints a
line and waits for the signal; after the command has ended, its stdout is a pipe too small for what
it prints, so the child is held in its last flush once the first line has come through."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli
from tests.release import safetensors_files as sf


def _env(*extra_paths: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "SWIMLATENT_WORKDIR")}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_paths), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(more)
    return env


def _start(argv, env, **popen):
    """The CLI with Python's default Ctrl-C handling (a background test runner may ignore SIGINT)."""
    popen.setdefault("stdout", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "swimlatent_wrap", *argv], cwd=REPO, env=env, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)


def _stub(folder: Path, module: str, body: str) -> Path:
    """A module of that name first on the child's path (a package when ``module`` is one, e.g. PIL)."""
    target = folder / module / "__init__.py" if module[0].isupper() else folder / f"{module}.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return folder


WAIT_FOR_CTRL_C = """\
import signal, sys
sys.stderr.write("stand-in {name}: loading, waiting for SIGINT\\n")
sys.stderr.flush()
while True:
    signal.pause()
"""


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# ------------------------------------------------------------------------------------------
# 2: usage errors; 1: everything else the user can fix


@pytest.mark.parametrize("argv,message", [
    (["tag", "r.toml", "--images", "folder"], "give a RECIPE or --images DIR, not both"),
    (["tag"], "give a RECIPE, or --images DIR"),
    (["tag", "--images", "folder", "--general-threshold", "2"], "--general-threshold must be between 0 and 1"),
    (["tag", "--images", "folder", "--character-threshold", "-0.5"], "--character-threshold must be between 0 and 1"),
    (["tag", "--images", "folder", "--batch-size", "0"], "--batch-size: must be 1 or more"),
    (["tag", "--images", "folder", "--prefix", "new\nline"], "holds a line break: sd-scripts reads only a caption's first line"),
    (["tokenizers", "--force"], "--force goes with --from-bpe, --import or --fetch"),
    (["plan", "r.toml"], "the following arguments are required: --out"),
    (["stamp"], "the following arguments are required: MODEL"),
    (["no-such-command"], "invalid choice"),
], ids=["recipe-and-images", "neither", "threshold", "negative-threshold", "batch-size", "prefix-line-break", "force-alone", "plan-no-out",
        "stamp-no-model", "unknown-command"])
def test_usage_errors_exit_2_with_one_line(tmp_path, argv, message):
    result = run_cli("--workdir", str(tmp_path / "w"), *argv)
    assert result.returncode == 2, result.stderr
    line = _one_line(result.stderr)
    assert message in line and "--help" in line, line
    assert not (tmp_path / "w").exists()  # refused before anything ran


def test_a_recipe_problem_is_still_exit_1(tmp_path):
    missing = tmp_path / "nowhere.toml"
    for argv in (["tag", str(missing)], ["validate", str(missing)]):
        result = run_cli(*argv)
        assert result.returncode == 1, (argv, result.stderr)
        assert str(missing) in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------
# 3: an unexpected exception


def _broken_pillow(tmp_path) -> Path:
    return _stub(tmp_path / "stubs", "PIL", 'raise RuntimeError("stand-in Pillow: a broken install")\n')


def _model_and_thumbnail(tmp_path) -> tuple[Path, Path]:
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model)
    thumbnail = tmp_path / "thumb.png"
    thumbnail.write_bytes(b"\x89PNG\r\n\x1a\n")
    return model, thumbnail


def test_an_unexpected_error_is_one_line_naming_its_crash_log(tmp_path):
    model, thumbnail = _model_and_thumbnail(tmp_path)
    workdir = tmp_path / "w"
    result = subprocess.run([sys.executable, "-m", "swimlatent_wrap", "--workdir", str(workdir), "stamp", str(model),
                             "--set", f"thumbnail={thumbnail}"], cwd=REPO, env=_env(_broken_pillow(tmp_path)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    line = _one_line(result.stderr)
    assert line.startswith("swimlatent stamp: unexpected error: RuntimeError: stand-in Pillow: a broken install"), line
    [log] = (workdir / "logs").glob("crash-*.log")
    assert str(log) in line
    report = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in report and "stand-in Pillow: a broken install" in report
    assert "swimlatent --workdir" in report and "stamp" in report  # the command that crashed


def test_an_unwritable_workdir_puts_the_crash_log_in_a_temp_file(tmp_path):
    model, thumbnail = _model_and_thumbnail(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = subprocess.run([sys.executable, "-m", "swimlatent_wrap", "--workdir", str(blocker / "w"), "stamp", str(model),
                             "--set", f"thumbnail={thumbnail}"], cwd=REPO,
                            env=_env(_broken_pillow(tmp_path), TMPDIR=str(temp)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    line = _one_line(result.stderr)
    [log] = temp.glob("swimlatent-crash-*.log")
    assert str(log) in line and "RuntimeError" in log.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------
# 130: Ctrl-C, with words that say what it stopped


def _ctrl_c_at_handshake(child: subprocess.Popen, handshake: str) -> tuple[str, str]:
    try:
        line = child.stderr.readline().decode()
        assert handshake in line, f"the child never reached the point under test: {line!r}"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return (out or b"").decode(), err.decode()


def test_ctrl_c_while_starting_says_nothing_was_done(tmp_path):
    """`difflib` is first imported while the CLI builds its parser (the [captions] declarations behind
    `tag`'s flags, through the tables' checks): a slow import there."""
    stubs = _stub(tmp_path / "stubs", "difflib", WAIT_FOR_CTRL_C.format(name="difflib"))
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model)
    before = model.read_bytes()
    child = _start(["stamp", str(model), "--set", "title=Swim"], _env(stubs))
    _, err = _ctrl_c_at_handshake(child, "stand-in difflib: loading")
    assert child.returncode == 130, err
    line = _one_line(err)
    assert line == "swimlatent: stopped by Ctrl-C before it started; nothing was done", line
    assert "interrupted" not in line
    assert model.read_bytes() == before


def test_ctrl_c_while_a_command_works_says_interrupted(tmp_path):
    """stamp imports Pillow for the thumbnail before it writes anything: a slow import there."""
    model, thumbnail = _model_and_thumbnail(tmp_path)
    before = model.read_bytes()
    stubs = _stub(tmp_path / "stubs", "PIL", WAIT_FOR_CTRL_C.format(name="Pillow"))
    child = _start(["stamp", str(model), "--set", f"thumbnail={thumbnail}"], _env(stubs))
    _, err = _ctrl_c_at_handshake(child, "stand-in Pillow: loading")
    assert child.returncode == 130, err
    line = _one_line(err.replace("stand-in Pillow: loading, waiting for SIGINT\n", ""))
    assert line.startswith("swimlatent stamp: interrupted;") and "run it again" in line, line
    assert model.read_bytes() == before


def test_ctrl_c_after_the_command_finished_does_not_claim_it_interrupted_anything(tmp_path):
    """The stamp is written; what it prints is held in stdout's buffer (a pipe is block-buffered)
    until the CLI flushes it at the end, into a one-page pipe the test reads only the first line of:
    the child is then held in that flush, its work done, when the Ctrl-C comes."""
    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        pytest.skip("needs Linux's F_SETPIPE_SZ")
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model)
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
        capacity = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
        if capacity >= 6000:
            pytest.skip(f"the smallest pipe here holds {capacity} bytes")
        # more than the pipe holds, less than the 8 KiB Python keeps before it writes to a pipe
        title = "Swim " * ((capacity + 1500) // 5)
        child = _start(["stamp", str(model), "--set", f"title={title}"], _env(), stdout=write_end)
        os.close(write_end)
        write_end = -1
        try:
            seen = b""
            while b"\n" not in seen:  # well under one page: the pipe stays full, the child stays held
                chunk = os.read(read_end, 100)
                assert chunk, f"stdout closed before the first line: {child.stderr.read()!r}"
                seen += chunk
            assert seen.startswith(b"stamped "), seen
            child.send_signal(signal.SIGINT)
            err = child.stderr.read().decode()
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    assert child.returncode == 130, err
    line = _one_line(err)
    assert line == "swimlatent stamp: it had finished when Ctrl-C came; nothing was interrupted", line
    shown = run_cli("inspect", str(model), "--json")
    assert shown.returncode == 0 and re.search(r'"modelspec.title": "Swim Swim', shown.stdout), shown.stderr

"""The runner with real child processes: streaming, logging, redaction, failures, Ctrl-C forwarding
(SIGINT → SIGTERM → SIGKILL on the child's process group), stragglers, probes."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from swimlatent_wrap import runner
from swimlatent_wrap.errors import UserError
from tests.helpers import REPO

PY = sys.executable


def test_streams_to_console_and_log_with_the_command_first(tmp_path, capfd):
    log = tmp_path / "run" / "log"
    argv = [PY, "-c", "import sys; print('out line'); print('err line', file=sys.stderr); print('50%', end='\\r'); print('100%')"]
    runner.run(argv, log_path=log, cwd=tmp_path)
    text = log.read_text()
    assert text.splitlines()[0] == "$ " + shlex.join(argv)
    assert "out line" in text and "err line" in text and "100%" in text
    assert text.rstrip().endswith("exit code 0")
    console = capfd.readouterr().out
    assert "out line" in console and "err line" in console and console.startswith("$ ")


def test_secrets_never_reach_log_console_or_error(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETsecret123")
    monkeypatch.setenv("DANBOORU_API_KEY", "dbkey-SECRET-456")
    log = tmp_path / "log"
    argv = [PY, "-c", "import os, sys; print('token is', os.environ['HF_TOKEN'], os.environ['DANBOORU_API_KEY']); sys.exit(4)",
            "--huggingface_token", "plain-value-789", "--wandb_api_key=other-000"]
    with pytest.raises(runner.RunFailed) as failure:
        runner.run(argv, log_path=log)
    everything = log.read_text() + capfd.readouterr().out + "\n".join(failure.value.lines)
    for secret in ("hf_SECRETsecret123", "dbkey-SECRET-456", "plain-value-789", "other-000"):
        assert secret not in everything
    assert "--huggingface_token '***'" in log.read_text() and "--wandb_api_key=***" in log.read_text()
    assert "token is *** ***" in log.read_text()


def test_only_secret_options_are_redacted():
    argv = ["x", "--max_token_length", "225", "--tokenizer_cache_dir", "/c", "--huggingface_token", "t0k3n", "--api-key=k"]
    assert runner.redact_argv(argv) == ["x", "--max_token_length", "225", "--tokenizer_cache_dir", "/c",
                                        "--huggingface_token", "***", "--api-key=***"]
    from swimlatent_wrap.stages.record import without_secrets

    assert without_secrets({"args": {"max_token_length": 225, "huggingface_token": "t", "tokenizer_cache_dir": "/c"}}) == \
        {"args": {"max_token_length": 225, "huggingface_token": "***", "tokenizer_cache_dir": "/c"}}


def test_non_zero_exit_is_one_error_with_command_code_and_tail(tmp_path):
    log = tmp_path / "log"
    script = "import sys; [print(f'line {i}') for i in range(40)]; print('RuntimeError: out of memory'); sys.exit(3)"
    with pytest.raises(runner.RunFailed) as failure:
        runner.run([PY, "-c", script], log_path=log, echo=False)
    error = failure.value
    assert isinstance(error, UserError)
    assert error.returncode == 3
    assert "exit code 3" in error.lines[0] and str(log) in error.lines[0]
    assert error.lines[1] == "command: " + shlex.join([PY, "-c", script])
    assert error.lines[-1] == "  | RuntimeError: out of memory"
    assert "  | line 39" in error.lines and "  | line 0" not in error.lines  # the tail, not the whole log
    assert all("\n" not in line for line in error.lines)


def test_the_first_line_says_the_scripts_own_error_not_the_launchers(tmp_path):
    # as accelerate's launcher fails: the script's traceback, then the launcher's own after it
    log = tmp_path / "log"
    script = ("import sys\n"
              "print('Traceback (most recent call last):')\n"
              "print('  File \"sdxl_train.py\", line 9, in <module>')\n"
              "print(\"ValueError: invalid literal for int() with base 10: 'abc'\")\n"
              "print('Traceback (most recent call last):')\n"
              "print('  File \"accelerate/commands/launch.py\", line 1, in simple_launcher')\n"
              "print(\"subprocess.CalledProcessError: Command '[...]' returned non-zero exit status 1.\")\n"
              "sys.exit(1)\n")
    with pytest.raises(runner.RunFailed) as failure:
        runner.run([PY, "-c", script, "sdxl_train.py"], log_path=log, echo=False)
    error = failure.value
    assert error.cause == "ValueError: invalid literal for int() with base 10: 'abc'"
    assert error.lines[0].startswith("sdxl_train.py failed (exit code 1): ValueError: invalid literal")
    assert error.lines[0].endswith(f"; full log: {log}")
    # the launcher's re-raise stays in the log file; what is shown ends at the script's own error
    assert error.tail[-1] == "ValueError: invalid literal for int() with base 10: 'abc'"
    assert not any("CalledProcessError" in line for line in error.tail)
    assert "CalledProcessError" in log.read_text()


def test_the_cause_comes_from_this_run_not_an_earlier_one_in_the_same_log(tmp_path):
    log = tmp_path / "log"
    log.write_text("Traceback (most recent call last):\nRuntimeError: the previous run's failure\n")
    with pytest.raises(runner.RunFailed) as failure:
        runner.run([PY, "-c", "import sys; print('no exception this time'); sys.exit(2)"], log_path=log, echo=False)
    assert failure.value.cause is None


def test_no_exception_line_leaves_the_first_line_as_it_was(tmp_path):
    with pytest.raises(runner.RunFailed) as failure:
        runner.run([PY, "-c", "import sys; print('just a message'); sys.exit(2)"], log_path=tmp_path / "log", echo=False)
    assert failure.value.cause is None and ": " not in failure.value.lines[0].split(";")[0].split(")")[-1]


def test_the_tail_shows_a_progress_bar_as_one_line(tmp_path):
    script = ("import sys, time\n"
              "for i in range(30):\n    sys.stdout.write(f'\\rsteps: {i}/30'); sys.stdout.flush(); time.sleep(0.001)\n"
              "print(); print('Traceback (most recent call last):'); print('ValueError: bad'); sys.exit(1)")
    with pytest.raises(runner.RunFailed) as failure:
        runner.run([PY, "-c", script], log_path=tmp_path / "log", echo=False)
    assert failure.value.tail == ["steps: 29/30", "Traceback (most recent call last):", "ValueError: bad"]


def test_missing_program_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such program"):
        runner.run([str(tmp_path / "nope")], log_path=tmp_path / "log")


DRIVER = textwrap.dedent("""\
    import sys, json
    from pathlib import Path
    from swimlatent_wrap import runner
    runner.STRAGGLER_GRACE_S = 0.5
    argv = json.loads(sys.argv[1])
    try:
        runner.run(argv, log_path=Path(sys.argv[2]), interrupt_grace=float(sys.argv[3]), terminate_grace=1.0)
    except runner.Interrupted as stop:
        print("INTERRUPTED", stop.returncode, flush=True)
        sys.exit(130)
    print("FINISHED", flush=True)
""")

# A child that reports each signal it gets into a file, and ignores the ones listed in argv[2].
CHILD = textwrap.dedent("""\
    import os, signal, sys, time
    marks = open(sys.argv[1], "a", buffering=1)
    ignore = sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] else []
    def handler(signum, frame):
        name = signal.Signals(signum).name
        marks.write(name + "\\n")
        if name not in ignore:
            sys.exit(128 + signum)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
""")


def _start_driver(tmp_path: Path, child_argv: list[str], interrupt_grace: float = 5.0) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "log"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([PY, str(driver), json.dumps(child_argv), str(log), str(interrupt_grace)], stdout=subprocess.PIPE,
                            text=True, env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    # the command line in the log's header contains the word too: wait for the child's own line
    while time.monotonic() < deadline and not (log.is_file() and "ready" in log.read_text().splitlines()):
        time.sleep(0.02)
    assert "ready" in log.read_text().splitlines()
    return proc, log


# The grace periods only decide when the next signal is sent to a child that has not exited. A child
# that obeys gets a grace far longer than any slow machine needs (it exits, so nobody waits for it);
# a child that ignores a signal ignores it forever, so a short grace escalates on any machine.
OBEYS, IGNORES = 120.0, 1.0


@pytest.mark.parametrize("ignore,grace,expected", [
    ("", OBEYS, ["SIGINT"]),                          # stops on the forwarded Ctrl-C
    ("SIGINT", IGNORES, ["SIGINT", "SIGTERM"]),       # ignores it: terminated after the grace period
    ("SIGINT,SIGTERM", IGNORES, ["SIGINT", "SIGTERM"]),  # ignores both: killed (SIGKILL cannot be seen)
])
def test_ctrl_c_is_forwarded_then_terminate_then_kill(tmp_path, ignore, grace, expected):
    marks = tmp_path / "marks"
    proc, log = _start_driver(tmp_path, [PY, "-c", CHILD, str(marks), ignore], interrupt_grace=grace)
    os.kill(proc.pid, signal.SIGINT)  # what the terminal's Ctrl-C does to the wrapper
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, out
    assert "INTERRUPTED" in out
    assert marks.read_text().split() == expected
    assert "sending SIGINT to the training process group" in log.read_text()
    if "SIGTERM" in ignore:
        assert "sending SIGKILL" in log.read_text()
        assert "killed by SIGKILL" in log.read_text()


def test_sigterm_to_the_wrapper_terminates_the_child_too(tmp_path):
    marks = tmp_path / "marks"
    proc, log = _start_driver(tmp_path, [PY, "-c", CHILD, str(marks), ""])
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "INTERRUPTED" in out
    assert marks.read_text().split() == ["SIGTERM"]


def test_the_whole_group_is_stopped_not_only_the_launcher(tmp_path):
    """Like `accelerate launch`: the direct child starts the script and dies on Ctrl-C at once;
    the script (same process group) must be stopped too, and waited for."""
    marks = tmp_path / "marks"
    launcher = ("import subprocess, sys, json; p = subprocess.Popen(json.loads(sys.argv[1])); p.wait()")
    proc, log = _start_driver(tmp_path, [PY, "-c", launcher, json.dumps([PY, "-c", CHILD, str(marks), "SIGINT"])], interrupt_grace=1.0)
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    # the script ignored SIGINT, outlived the launcher, and still got SIGTERM from us
    assert marks.read_text().split() == ["SIGINT", "SIGTERM"]


def test_stragglers_of_a_finished_child_are_stopped(tmp_path):
    marks = tmp_path / "marks"
    # The starter exits only once its child has its signal handlers (the child's "ready", passed on):
    # the straggler grace starts when the starter exits, so the SIGTERM always finds the handler.
    starter = ("import subprocess, sys, json; p = subprocess.Popen(json.loads(sys.argv[1]), stdout=subprocess.PIPE, text=True); "
               "print(p.stdout.readline().strip(), flush=True)")
    proc, log = _start_driver(tmp_path, [PY, "-c", starter, json.dumps([PY, "-c", CHILD, str(marks), ""])])
    out, _ = proc.communicate(timeout=30)
    assert "FINISHED" in out
    assert marks.read_text().split() == ["SIGTERM"]


def test_probe_captures_and_never_raises(tmp_path):
    done = runner.probe([PY, "-c", "import sys; print('hello'); print('warn', file=sys.stderr); sys.exit(2)"])
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (2, "hello", "warn")
    assert runner.probe([str(tmp_path / "missing")]).returncode == 127
    assert runner.probe([PY, "-c", "import time; time.sleep(5)"], timeout=0.5).returncode == 124


def test_describe_exit():
    assert runner.describe_exit(0) == "exit code 0"
    assert runner.describe_exit(-9) == "killed by SIGKILL"
    assert runner.describe_exit(130) == "exit code 130 (SIGINT)"

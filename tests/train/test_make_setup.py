"""`make setup`: the message when there is no sd-scripts checkout, and idempotence with one. Runs
the real Makefile against a stand-in venv (a `python` that is this interpreter), so nothing is
installed into the project's .venv and nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (venv / "bin" / ".installed").touch()  # newer than pyproject.toml: the venv target is done
    return venv


def make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "SWIMLATENT_SD_SCRIPTS" and not k.startswith("MAKE")}
    full.update(env or {})
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args], capture_output=True, text=True,
                          env=full, timeout=120)


def test_setup_without_a_checkout_says_how_to_point_at_one(tmp_path):
    done = make("setup", f"VENV={fake_venv(tmp_path)}", env={"SWIMLATENT_SD_SCRIPTS": str(tmp_path / "missing")})
    assert done.returncode != 0
    assert "no sd-scripts checkout at" in done.stderr
    assert "SWIMLATENT_SD_SCRIPTS" in done.stderr and "48d368fa557731ad0488c07304dfeba8c07910eb" in done.stderr


def test_setup_with_a_checkout_installs_once_then_is_up_to_date(tmp_path, tools):
    checkout = tmp_path / "sd-scripts"
    shutil.copytree(tools["sd"], checkout)
    venv = fake_venv(tmp_path)
    env = {"SWIMLATENT_SD_SCRIPTS": str(checkout), "STANDIN_TORCH_CUDA": "12.4",
           "PYTHONPATH": str(tools["torch"]), "PIP_NO_INDEX": "1"}
    first = make("setup", f"VENV={venv}", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "CUDA build) already installed" in first.stdout and "make setup: done" in first.stdout
    second = make("setup", f"VENV={venv}", env=env)
    assert second.returncode == 0 and "up to date" in second.stdout
    (checkout / "requirements.txt").write_text("# changed\n")
    third = make("setup", f"VENV={venv}", env=env)
    assert third.returncode == 0 and "make setup: done" in third.stdout

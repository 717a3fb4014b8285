"""Stamp and inspect faults (issue 15): an in-place stamp killed between its steps, a header nested
100 000 deep, a file with no tensors.

The interrupted stamps are real: a child runs `swimlatent stamp` (cli.main) and, at the point under
test, prints where it is and blocks reading its stdin; the parent then kills it with SIGKILL, so
nothing of the stamp's own cleanup runs. The only thing the child changes is a stop in os.pwrite /
os.fsync for the model's own inode (the undo file's writes pass untouched):

    before-header   the old header is saved beside the file (.NAME.stamp-undo), the header not yet written
    after-header    the new header is written and fsynced, the undo file not yet removed

(The third state, a header torn halfway through the write, is tests/release/test_stamp_interrupted.py.)
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.helpers import REPO, run_cli
from tests.release import safetensors_files as sf

STOP = textwrap.dedent("""
    import os, sys
    from pathlib import Path

    model, point = Path(sys.argv[1]), sys.argv[2]
    inode = model.stat().st_ino

    def stop():
        print("at", point, flush=True)
        sys.stdin.read()  # held here until the parent kills us
        os._exit(3)  # stdin closed without a kill: the test fails on the exit status

    real_pwrite, real_fsync = os.pwrite, os.fsync

    def pwrite(fd, data, offset):
        if point == "before-header" and os.fstat(fd).st_ino == inode:
            stop()
        return real_pwrite(fd, data, offset)

    def fsync(fd):
        real_fsync(fd)
        if point == "after-header" and os.fstat(fd).st_ino == inode:
            stop()

    os.pwrite, os.fsync = pwrite, fsync
    from swimlatent_wrap.cli import main
    sys.exit(main(["stamp", str(model), *sys.argv[3:]]))
""")


def _stamped(tmp_path):
    model = tmp_path / "ft.safetensors"
    tensors = sf.checkpoint(model)
    # the first stamp grows the header (copy, padded to 4 KiB), so the next ones fit in place
    first = run_cli("stamp", str(model), "--set", "title=Swim")
    assert first.returncode == 0, first.stderr
    return model, tensors


def _killed_at(model, point: str, *stamp_args: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", STOP, str(model), point, *stamp_args], cwd=REPO,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()  # returns at the signal, or at EOF if the child ended without reaching it
    if line.strip() == f"at {point}":
        child.kill()
    _, err = child.communicate(timeout=60)
    assert line.strip() == f"at {point}" and child.returncode == -signal.SIGKILL, (line, child.returncode, err)


def _same_tensors(model, tensors, data):
    assert sf.data_section(model) == data
    loaded = load_file(str(model))
    assert all(np.array_equal(loaded[k], v) for k, v in tensors.items())


def test_a_stamp_killed_after_the_header_write_keeps_the_new_header(tmp_path):
    from swimlatent_wrap.modelspec.safetensors_file import undo_path

    model, tensors = _stamped(tmp_path)
    data = sf.data_section(model)
    _killed_at(model, "after-header", "--set", "title=Swim 2", "--set", "description=second take")
    undo = undo_path(model)
    assert undo.is_file()  # the exact state: new header on disk, the old one still beside it
    assert sf.header(model)["__metadata__"]["modelspec.title"] == "Swim 2"

    shown = run_cli("inspect", str(model))
    assert shown.returncode == 0, shown.stderr
    warning = shown.stderr.strip().splitlines()
    assert len(warning) == 1 and "Traceback" not in shown.stderr, shown.stderr
    assert "interrupted" in warning[0] and "new header" in warning[0] and "swimlatent stamp" in warning[0]
    assert str(model) in warning[0] and "Swim 2" in shown.stdout
    as_json = run_cli("inspect", str(model), "--json")
    assert as_json.returncode == 0 and any("interrupted" in w for w in json.loads(as_json.stdout)["warnings"])

    result = run_cli("stamp", str(model), "--set", "author=Ann")
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stdout.splitlines() if "interrupted" in line]
    assert len(said) == 1 and "kept" in said[0] and "restored" not in result.stdout, result.stdout
    assert not undo.exists()
    meta = sf.header(model)["__metadata__"]
    assert meta["modelspec.title"] == "Swim 2" and meta["modelspec.description"] == "second take"
    assert meta["modelspec.author"] == "Ann" and meta["modelspec.hash_sha256"] == sf.spec_hash(model)
    _same_tensors(model, tensors, data)
    clean = run_cli("inspect", str(model))
    assert clean.returncode == 0 and clean.stderr == ""


def test_a_stamp_killed_before_the_header_write_changed_nothing(tmp_path):
    from swimlatent_wrap.modelspec.safetensors_file import undo_path

    model, tensors = _stamped(tmp_path)
    data = sf.data_section(model)
    before = model.read_bytes()
    _killed_at(model, "before-header", "--set", "title=Swim 2")
    assert undo_path(model).is_file() and model.read_bytes() == before

    shown = run_cli("inspect", str(model))
    assert shown.returncode == 0, shown.stderr
    warning = shown.stderr.strip().splitlines()
    assert len(warning) == 1 and "interrupted" in warning[0] and "unchanged" in warning[0], shown.stderr

    result = run_cli("stamp", str(model), "--set", "author=Ann")
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stdout.splitlines() if "interrupted" in line]
    assert len(said) == 1 and "had not changed" in said[0], result.stdout
    assert not undo_path(model).exists()
    meta = sf.header(model)["__metadata__"]
    assert meta["modelspec.title"] == "Swim" and meta["modelspec.author"] == "Ann"
    _same_tensors(model, tensors, data)


def test_a_torn_header_is_one_line_in_inspect(tmp_path):
    """The torn state, built exactly as the in-place write leaves it when it dies inside its pwrite:
    the undo file holds the old header (and the new header's sha256), the file the first half of the
    new header over the old one. The recovery itself is test_stamp_interrupted.py's."""
    from swimlatent_wrap.modelspec import safetensors_file as st

    model, _ = _stamped(tmp_path)
    info = st.read_safetensors(model)
    old = model.read_bytes()[: info.header_bytes]
    new_json = info.header_json({**info.metadata, "modelspec.title": "x" * 300})
    new = st.padded_header(new_json, info.header_bytes - 8)
    st.undo_path(model).write_bytes(st.undo_record(old, new))
    with open(model, "r+b") as handle:
        handle.write(new[: 8 + len(new_json) // 2])  # cut inside the new JSON (not in its padding)
    shown = run_cli("inspect", str(model))
    lines = shown.stderr.strip().splitlines()
    assert shown.returncode == 1 and len(lines) == 1 and "Traceback" not in shown.stderr, shown.stderr
    assert "interrupted in-place stamp" in lines[0] and "swimlatent stamp" in lines[0] and str(model) in lines[0]
    fixed = run_cli("stamp", str(model))
    assert fixed.returncode == 0 and "restored the header" in fixed.stdout, fixed.stderr


@pytest.mark.parametrize("cut", ["inside the JSON", "none"])
def test_an_undo_file_from_before_the_sha256_is_judged_by_reading_the_header(tmp_path, cut):
    """An undo file as the previous version wrote it (the old header only, no sha256 of the new one):
    a new header that reads, with the same tensors, is kept; one that does not is put back."""
    from swimlatent_wrap.modelspec import safetensors_file as st

    model, _ = _stamped(tmp_path)
    info = st.read_safetensors(model)
    old = model.read_bytes()[: info.header_bytes]
    new_json = info.header_json({**info.metadata, "modelspec.title": "Swim 2"})
    new = st.padded_header(new_json, info.header_bytes - 8)
    st.undo_path(model).write_bytes(old)
    with open(model, "r+b") as handle:
        handle.write(new[: 8 + len(new_json) // 2] if cut == "inside the JSON" else new)
    result = run_cli("stamp", str(model), "--set", "author=Ann")
    assert result.returncode == 0, result.stderr
    meta = sf.header(model)["__metadata__"]
    if cut == "none":
        assert "had finished writing its new header" in result.stdout and meta["modelspec.title"] == "Swim 2"
    else:
        assert "restored the header" in result.stdout and meta["modelspec.title"] == "Swim"
    assert meta["modelspec.author"] == "Ann" and not st.undo_path(model).exists()


def test_an_undo_file_that_does_not_fit_is_one_warning_in_inspect(tmp_path):
    from swimlatent_wrap.modelspec.safetensors_file import undo_path

    model, _ = _stamped(tmp_path)
    undo_path(model).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    shown = run_cli("inspect", str(model))
    lines = shown.stderr.strip().splitlines()
    assert shown.returncode == 0 and len(lines) == 1 and "does not match this file" in lines[0], shown.stderr
    refused = run_cli("stamp", str(model), "--set", "title=x")
    assert refused.returncode == 1 and "does not match this file" in refused.stderr and undo_path(model).exists()


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000,
                                  b'{"t":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001])
def test_a_header_nested_100000_deep_is_refused_in_one_line(tmp_path, body):
    model = sf.raw(tmp_path / "deep.safetensors", body)
    original = model.read_bytes()
    for argv in (["inspect", str(model)], ["inspect", str(model), "--json"], ["stamp", str(model), "--set", "title=x"]):
        result = run_cli(*argv)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, (argv, result.stderr[-500:])
        assert str(model) in lines[0] and "nested" in lines[0]
    assert model.read_bytes() == original


@pytest.mark.parametrize("header", [{}, {"__metadata__": {"ss_base_model_version": "sdxl_base_v1-0"}}])
def test_a_file_with_no_tensors_is_not_stamped(tmp_path, header):
    model = sf.raw(tmp_path / "empty.safetensors", header)
    original = model.read_bytes()
    out = tmp_path / "out.safetensors"
    for argv in (["stamp", str(model), "--set", "title=x"], ["stamp", str(model), "--out", str(out)]):
        result = run_cli(*argv)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(model) in lines[0] and "no tensors" in lines[0]
    assert model.read_bytes() == original and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.safetensors"]

    shown = run_cli("inspect", str(model))
    assert shown.returncode == 0 and "holds no tensors" in shown.stdout, shown.stderr
    as_json = run_cli("inspect", str(model), "--json")
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and data["tensors"] == 0 and "holds no tensors" in " ".join(data["warnings"])

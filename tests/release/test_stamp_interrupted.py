"""An in-place stamp killed halfway through writing the header loses nothing.

The child below is the real write path with one fault: ``os.pwrite`` writes the first half of the new
header and the process dies on the spot (``os._exit``, no cleanup), as a crash or power cut would
leave it. The file is then unreadable; the next `swimlatent stamp` puts the old header back from
the copy kept beside the file and stamps, tensors bit-identical.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
from safetensors.numpy import load_file

from tests.helpers import REPO, run_cli
from tests.release import safetensors_files as sf

CRASH = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from swimlatent_wrap.modelspec import safetensors_file as st

    real = os.pwrite
    def torn(fd, data, offset):
        real(fd, data[: len(data) // 2], offset)
        os._exit(9)
    os.pwrite = torn
    info = st.read_safetensors(Path(sys.argv[1]))
    st.write_header(info, {**info.metadata, "modelspec.title": "x" * 300, "modelspec.description": "y" * 300})
""")


def _stamped_twice(tmp_path):
    model = tmp_path / "ft.safetensors"
    tensors = sf.checkpoint(model)
    # the first stamp grows the header (copy, padded to 4 KiB), so the next ones fit in place
    assert run_cli("stamp", str(model), "--set", "title=Swim").returncode == 0
    return model, tensors


def test_no_undo_file_is_left_and_an_unchanged_header_is_not_rewritten(tmp_path):
    from swimlatent_wrap.modelspec.safetensors_file import undo_path

    model, _ = _stamped_twice(tmp_path)
    changed = run_cli("stamp", str(model), "--set", "title=Swim 2")
    assert changed.returncode == 0 and "(in place;" in changed.stdout, changed.stderr
    assert not undo_path(model).exists()
    before = model.stat().st_mtime_ns
    again = run_cli("stamp", str(model), "--set", "title=Swim 2")
    assert again.returncode == 0 and "(in place;" in again.stdout
    assert model.stat().st_mtime_ns == before  # same header: the file was not written at all


def test_a_stamp_killed_mid_write_is_recovered_by_the_next_stamp(tmp_path):
    from swimlatent_wrap.modelspec.safetensors_file import undo_path

    model, tensors = _stamped_twice(tmp_path)
    data = sf.data_section(model)
    header_before = sf.header(model)
    crashed = subprocess.run([sys.executable, "-c", CRASH, str(model)], cwd=REPO, capture_output=True, text=True)
    assert crashed.returncode == 9, crashed.stderr
    assert undo_path(model).is_file()

    inspect = run_cli("inspect", str(model))  # torn: refused, with what to do
    assert inspect.returncode == 1 and "Traceback" not in inspect.stderr
    assert "interrupted in-place stamp" in inspect.stderr and "swimlatent stamp" in inspect.stderr

    result = run_cli("stamp", str(model), "--set", "title=Swim 3")
    assert result.returncode == 0, result.stderr
    assert "restored the header" in result.stdout
    assert not undo_path(model).exists()
    assert sf.data_section(model) == data
    loaded = load_file(str(model))
    assert all(np.array_equal(loaded[k], v) for k, v in tensors.items())
    meta = sf.header(model)["__metadata__"]
    assert meta["modelspec.title"] == "Swim 3" and meta["modelspec.hash_sha256"] == sf.spec_hash(model)
    assert {k: v for k, v in meta.items() if k != "modelspec.title"} == \
        {k: v for k, v in header_before["__metadata__"].items() if k != "modelspec.title"}


def test_a_leftover_undo_that_does_not_match_the_file_is_refused(tmp_path):
    from swimlatent_wrap.modelspec.safetensors_file import undo_path

    model, _ = _stamped_twice(tmp_path)
    other = tmp_path / "other.safetensors"
    sf.checkpoint(other, metadata={"a": "b"})  # a different header length
    undo_path(model).write_bytes(other.read_bytes()[:4096])
    original = model.read_bytes()
    result = run_cli("stamp", str(model), "--set", "title=Swim 4")
    assert result.returncode == 1 and "does not match this file" in result.stderr and "Traceback" not in result.stderr
    assert model.read_bytes() == original


def test_a_symlinked_model_is_stamped_through_the_link(tmp_path):
    """The copy path (header grows) rewrites the file the link points to; the link stays a link."""
    real = tmp_path / "cache" / "ft.safetensors"
    real.parent.mkdir()
    sf.checkpoint(real)
    data = sf.data_section(real)
    link = tmp_path / "models" / "ft.safetensors"
    link.parent.mkdir()
    link.symlink_to(real)
    result = run_cli("stamp", str(link), "--set", "title=Linked")
    assert result.returncode == 0 and "(copied;" in result.stdout, result.stderr
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert sf.header(real)["__metadata__"]["modelspec.title"] == "Linked" and sf.data_section(real) == data
    assert not [p for p in real.parent.iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in link.parent.iterdir()) == ["ft.safetensors"]

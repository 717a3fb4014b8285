"""The merge's host-memory check (sd-scripts merges in RAM, facts §3): refused before sd-scripts
starts when the model in the merge dtype plus its save copy cannot fit, with the cheaper setting
named. The estimate itself is checked against a measured merge in the real tier."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import pytest

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.release.merge import available_memory, check_host_memory, merge_host_bytes


def sparse_model(path, elements: int):
    """A safetensors file whose header declares ``elements`` fp16 values; the data is a hole."""
    header = json.dumps({"model.diffusion_model.w": {"dtype": "F16", "shape": [elements], "data_offsets": [0, 2 * elements]}})
    header += " " * (-(8 + len(header)) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header.encode())
        handle.truncate(8 + len(header) + 2 * elements)
    return path


def test_estimate_counts_both_copies_and_the_lora(tmp_path):
    base, lora = sparse_model(tmp_path / "m.safetensors", 1000), tmp_path / "l.safetensors"
    lora.write_bytes(b"x" * 100)
    assert merge_host_bytes(base, lora, "float", "fp16") == 1000 * 6 + 200 + 1_500_000_000
    assert merge_host_bytes(base, lora, "fp16", "fp16") == 1000 * 4 + 200 + 1_500_000_000


def test_a_merge_that_cannot_fit_is_refused_with_the_cheaper_precision(tmp_path):
    free = available_memory()
    if free is None:
        pytest.skip("no /proc/meminfo on this machine")
    elements = free // 3 + 1  # float + fp16 = 6 bytes each: over what is free; fp16 + fp16 named
    base, lora = sparse_model(tmp_path / "m.safetensors", elements), tmp_path / "l.safetensors"
    lora.write_bytes(b"x")
    recipe = SimpleNamespace(merge=SimpleNamespace(precision="float", save_precision="fp16"))
    with pytest.raises(UserError) as refused:
        check_host_memory(recipe, base, lora)
    line, = refused.value.lines
    assert "GB of RAM" in line and "precision = 'float'" in line and 'precision = "fp16" needs about' in line

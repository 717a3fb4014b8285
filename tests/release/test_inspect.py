"""`swimlatent inspect`: metadata, tensor count and dtypes from the header; --verify recomputes the hash."""

from __future__ import annotations

import json
import struct

from tests.helpers import run_cli
from tests.release import safetensors_files as sf


def test_json_and_table(tmp_path):
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model, metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    result = run_cli("inspect", str(model), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["tensors"] == 10 and data["dtypes"] == {"F32": 10}
    assert data["size_bytes"] == model.stat().st_size and data["metadata"] == {"ss_base_model_version": "sdxl_base_v1-0"}
    table = run_cli("inspect", str(model))
    assert table.returncode == 0 and "ss_base_model_version" in table.stdout and "10 tensors (F32 10)" in table.stdout


def test_verify_passes_then_catches_changed_tensor_bytes(tmp_path):
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model)
    assert run_cli("stamp", str(model), "--set", "title=x").returncode == 0
    ok = run_cli("inspect", str(model), "--verify", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["hash_verified"] is True
    blob = bytearray(model.read_bytes())
    (n,) = struct.unpack("<Q", blob[:8])
    blob[8 + n + 5] ^= 0xFF  # one tensor byte
    model.write_bytes(bytes(blob))
    bad = run_cli("inspect", str(model), "--verify")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "hashes to " + sf.spec_hash(model) in bad.stderr


def test_verify_without_a_hash_and_a_malformed_file(tmp_path):
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model)
    missing = run_cli("inspect", str(model), "--verify")
    assert missing.returncode == 1 and "no modelspec.hash_sha256" in missing.stderr
    bad = sf.raw(tmp_path / "bad.safetensors", b"{oops", b"")
    result = run_cli("inspect", str(bad))
    assert result.returncode == 1 and "not JSON" in result.stderr and "Traceback" not in result.stderr

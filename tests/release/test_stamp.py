"""`swimlatent stamp`: real files, in place and copied, recipe and --set values, malformed inputs."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.helpers import REPO, run_cli
from tests.release import safetensors_files as sf

SHIPPED = REPO / "recipes" / "swim-in-latent"
SEED_KEYS = ("sai_model_spec", "architecture", "implementation", "title", "author", "description", "date", "license")


def stamp(*argv, env=None):
    return run_cli("stamp", *map(str, argv), env=env)


def test_stamp_round_trip_copy_then_in_place_and_idempotent(tmp_path):
    model = tmp_path / "ft.safetensors"
    tensors = sf.checkpoint(model, metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    before = sf.data_section(model)
    result = stamp(model, "--set", "title=Swim", "--set", "author=me", "--set", "tags=anime,sdxl")
    assert result.returncode == 0, result.stderr
    assert "(copied;" in result.stdout  # the small header had no room: streamed copy + rename
    assert sf.data_section(model) == before
    loaded = load_file(str(model))  # the safetensors library accepts the new header
    assert all(np.array_equal(loaded[k], v) for k, v in tensors.items())
    meta = sf.header(model)["__metadata__"]
    assert meta["modelspec.hash_sha256"] == sf.spec_hash(model)
    assert meta["modelspec.title"] == "Swim" and meta["modelspec.author"] == "me" and meta["modelspec.tags"] == "anime,sdxl"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base" and meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.resolution"] == "1024x1024" and meta["modelspec.prediction_type"] == "epsilon"
    assert all(isinstance(v, str) for v in meta.values())
    first = model.read_bytes()
    inode = model.stat().st_ino
    again = stamp(model, "--set", "title=Swim", "--set", "author=me", "--set", "tags=anime,sdxl")
    assert again.returncode == 0 and "(in place;" in again.stdout
    assert model.read_bytes() == first  # idempotent: the same bytes
    changed = stamp(model, "--set", "title=Swim 2", "--set", "description=longer text")
    assert "(in place;" in changed.stdout and model.stat().st_ino == inode  # the header was rewritten in place
    assert sf.data_section(model) == before and len(model.read_bytes()) == len(first)
    meta = sf.header(model)["__metadata__"]
    assert meta["modelspec.title"] == "Swim 2" and meta["modelspec.author"] == "me"  # kept from the file
    assert meta["modelspec.hash_sha256"] == sf.spec_hash(model)
    raw = model.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert raw[8:8 + length].rstrip(b" ").endswith(b"}")  # padded with spaces, as the format allows
    loaded = load_file(str(model))  # and the safetensors library still reads it
    assert all(np.array_equal(loaded[k], v) for k, v in tensors.items())


def test_out_writes_a_stamped_copy_and_leaves_the_source(tmp_path):
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model)
    original = model.read_bytes()
    out = tmp_path / "release" / "Swim.safetensors"
    result = stamp(model, "--out", out, "--set", "title=Swim")
    assert result.returncode == 0, result.stderr
    assert model.read_bytes() == original
    assert sf.data_section(out) == sf.data_section(model)
    assert sf.header(out)["__metadata__"]["modelspec.hash_sha256"] == sf.spec_hash(model)
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".part")]


def test_recipe_values_lora_architecture_and_path_stripping(tmp_path):
    from PIL import Image

    Image.new("RGB", (640, 480), (200, 30, 30)).save(tmp_path / "thumb.png")
    (tmp_path / "ft.toml").write_text(f'extends = "{SHIPPED}/base.toml"\nname = "ft"\n')
    recipe = tmp_path / "lora.toml"
    recipe.write_text(f'extends = "{SHIPPED}/lora.toml"\nname = "lora"\n'
                      '[modelspec]\nthumbnail = "thumb.png"\ntags = ["anime", "style"]\n')
    model = tmp_path / "lora.safetensors"
    sf.lora(model, metadata={"ss_base_model_version": "sdxl_base_v1-0", "ss_network_dim": "4",
                             "ss_output_dir": "/home/someone/out", "ss_dataset_dirs": '{"/home/someone/img": 1}',
                             "ss_sd_model_name": "ft.safetensors", "modelspec.title": "old"})
    result = stamp(model, "--recipe", recipe, "--set", "license=MIT")
    assert result.returncode == 0, result.stderr
    meta = sf.header(model)["__metadata__"]
    for key in SEED_KEYS:
        assert meta["modelspec." + key], key
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert meta["modelspec.title"] == "SwimInLatent" and meta["modelspec.author"] == "ddPn08"
    assert meta["modelspec.license"] == "MIT"  # --set wins over the recipe
    assert meta["modelspec.trigger_phrase"] == meta["modelspec.usage_hint"] == "new, newest, masterpiece, best quality"
    assert meta["modelspec.tags"] == "anime,style" and meta["modelspec.resolution"] == "1024x1024"
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0" and meta["ss_sd_model_name"] == "ft.safetensors"
    assert "ss_output_dir" not in meta and "ss_dataset_dirs" not in meta
    assert "ss_dataset_dirs" in result.stdout
    assert "/home/" not in json.dumps(meta) and str(tmp_path) not in json.dumps(meta)
    import base64
    import io

    url = meta["modelspec.thumbnail"]
    assert url.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 256 and thumb.size == (256, 192)


@pytest.mark.parametrize("assignment, message", [
    ("description=see /home/me/models/x.safetensors", "absolute local path"),
    ("author=hf_abcdefghijklmnopqrstuvwxyz0123", "looks like a secret"),
    ("hash_sha256=0x00", "computed from the file"),
    ("notakey", "expected KEY=VALUE"),
    ("frobnicate=1", "not a ModelSpec key"),
    ("titel=Swim", "did you mean 'title'?"),
    ("+title=Swim", "is a ModelSpec key"),
    ("date=yesterday", "ISO-8601"),
])
def test_set_refuses_paths_secrets_and_bad_items(tmp_path, assignment, message):
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model)
    original = model.read_bytes()
    result = stamp(model, "--set", assignment)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert model.read_bytes() == original


def test_a_custom_key_is_written_deliberately_with_a_plus(tmp_path):
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model)
    result = stamp(model, "--set", "+frobnicate=1", "--set", "date=2026-12-02")
    assert result.returncode == 0, result.stderr
    meta = json.loads(model.read_bytes()[8:8 + struct.unpack("<Q", model.read_bytes()[:8])[0]])["__metadata__"]
    assert meta["modelspec.frobnicate"] == "1" and meta["modelspec.date"] == "2026-12-02"


def test_a_url_is_not_a_path(tmp_path):
    model = tmp_path / "m.safetensors"
    sf.checkpoint(model)
    result = stamp(model, "--set", "implementation=https://github.com/Stability-AI/generative-models")
    assert result.returncode == 0, result.stderr


F32_4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}


@pytest.mark.parametrize("make, message", [
    (lambda p: sf.raw(p, {"a": F32_4}, bytes(16), length=10_000), "does not fit the file"),
    (lambda p: sf.raw(p, b"{not json", bytes(16)), "not JSON"),
    (lambda p: sf.raw(p, b"[1, 2]", b""), "not a JSON object"),
    (lambda p: sf.raw(p, {"a": F32_4, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, bytes(24)), "overlap"),
    (lambda p: sf.raw(p, {"a": {"dtype": "F32", "shape": [4], "data_offsets": [4, 20]}}, bytes(20)), "gaps"),
    (lambda p: sf.raw(p, {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}}, bytes(16)), "outside the data section"),
    (lambda p: sf.raw(p, {"a": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}, bytes(16)), "16 bytes for F32[5]"),
    (lambda p: sf.raw(p, b"{}", b"", length=200 * 1024 * 1024), "over the format's limit"),
    (lambda p: p.write_bytes(b"abc"), "too short"),
    (lambda p: sf.raw(p, {"__metadata__": {"a": 1}}, b""), "map strings to strings"),
])
def test_malformed_files_are_refused_and_left_alone(tmp_path, make, message):
    path = tmp_path / "bad.safetensors"
    make(path)
    original = path.read_bytes()
    result = stamp(path, "--set", "title=x")
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], result.stderr
    assert path.read_bytes() == original
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_copy_path_uses_the_kernel_copy_and_keeps_large_tensors_identical(tmp_path):
    from swimlatent_wrap.modelspec import safetensors_file as st

    model = tmp_path / "big.safetensors"
    rng = np.random.default_rng(3)
    from safetensors.numpy import save_file

    save_file({f"t{i}": rng.standard_normal(1_000_000).astype(np.float16) for i in range(5)}, str(model))
    before = sf.data_section(model)
    info = st.read_safetensors(model)
    assert st.write_header(info, {"k": "v" * 10_000}) == "copied"
    after = st.read_safetensors(model)
    assert (after.header_bytes % st.HEADER_ALIGN) == 0 and after.metadata == {"k": "v" * 10_000}
    assert sf.data_section(model) == before
    assert st.data_sha256(after) == sf.spec_hash(model)[2:]
    assert st.write_header(after, {"k": "short"}) == "in place" and os.path.getsize(model) == after.size

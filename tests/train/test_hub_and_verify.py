"""hf: model references without a network (already fetched and verified; present but unverifiable;
absent and offline), and the output verification that decides whether a run counts."""

from __future__ import annotations

import json
import struct

import pytest

from swimlatent_wrap.stages import hub
from swimlatent_wrap.modelspec.safetensors_file import NotSafetensors, read_safetensors
from swimlatent_wrap.stages.verify import sha256_file, tensor_problem
from swimlatent_wrap.workdir import Workdir
from tests.train import standin_lib

HF_RECIPE = """\
    extends = "base.toml"
    name = "hubbed"
    model = "hf:someone/sdxl-tiny/tiny.safetensors"
    [args]
    save_state = false
    save_every_n_epochs = 10
"""


def test_a_verified_hub_file_is_used_without_the_network(stages):
    lab = stages
    lab.recipe("hubbed", HF_RECIPE)
    workdir = Workdir(lab.workdir)
    target = workdir.hub_file("someone/sdxl-tiny", "tiny.safetensors")
    target.parent.mkdir(parents=True)
    target.write_bytes(lab.tools["checkpoint"].read_bytes())
    hub._remember(target, "someone/sdxl-tiny", "tiny.safetensors", sha256_file(target))
    done = lab.cli("train", str(lab.recipes / "hubbed.toml"), "--allow-cpu")  # HF_HUB_OFFLINE=1 in lab.env
    assert done.returncode == 0, done.stderr
    record = lab.record("hubbed")
    assert record["input_model"] == {"ref": "hf:someone/sdxl-tiny/tiny.safetensors", "path": str(target),
                                     "sha256": sha256_file(target)}
    assert "unverified" not in done.stderr


def test_a_hub_file_that_changed_since_verification_is_not_trusted(stages):
    lab = stages
    workdir = Workdir(lab.workdir)
    target = workdir.hub_file("someone/sdxl-tiny", "tiny.safetensors")
    target.parent.mkdir(parents=True)
    target.write_bytes(lab.tools["checkpoint"].read_bytes())
    hub._remember(target, "someone/sdxl-tiny", "tiny.safetensors", sha256_file(target))
    assert hub.verified_sha256(target)
    target.write_bytes(target.read_bytes() + b" ")
    assert hub.verified_sha256(target) is None


def test_a_present_but_unverified_hub_file_is_used_with_a_warning_when_offline(stages):
    lab = stages
    lab.recipe("hubbed", HF_RECIPE)
    target = Workdir(lab.workdir).hub_file("someone/sdxl-tiny", "tiny.safetensors")
    target.parent.mkdir(parents=True)
    target.write_bytes(lab.tools["checkpoint"].read_bytes())
    done = lab.cli("train", str(lab.recipes / "hubbed.toml"), "--allow-cpu")
    assert done.returncode == 0, done.stderr
    assert "unverified" in done.stderr and "OfflineModeIsEnabled" in done.stderr
    assert lab.record("hubbed")["input_model"]["sha256"] is None


def test_an_absent_hub_file_offline_is_one_clear_error_before_anything_runs(stages):
    lab = stages
    lab.recipe("hubbed", HF_RECIPE)
    done = lab.cli("train", str(lab.recipes / "hubbed.toml"), "--allow-cpu")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert "model = hf:someone/sdxl-tiny/tiny.safetensors: not in" in errors[0]
    assert "cannot reach the Hugging Face Hub" in errors[0] and "local path" in errors[0]
    assert not lab.runs("hubbed")


def _file(tmp_path, tensors, metadata=None, cut=0):
    head, body = standin_lib.safetensors_bytes(tensors, metadata)
    path = tmp_path / "m.safetensors"
    data = head + body
    path.write_bytes(data[: len(data) - cut] if cut else data)
    return path


CHECKPOINT = {
    "model.diffusion_model.out.2.bias": ("F32", [4], [0.0] * 4),
    "conditioner.embedders.0.transformer.x": ("F16", [2], [1.0] * 2),
    "conditioner.embedders.1.model.x": ("BF16", [2], [1.0] * 2),
    "first_stage_model.x": ("F32", [1], [1.0]),
}
LORA = {
    "lora_unet_a.lora_down.weight": ("F32", [2, 4], [0.0] * 8),
    "lora_unet_a.lora_up.weight": ("F32", [4, 2], [0.0] * 8),
    "lora_unet_a.alpha": ("F32", [], [1.0]),
}


def test_verify_accepts_what_sd_scripts_saves(tmp_path):
    info = read_safetensors(_file(tmp_path, CHECKPOINT, {"modelspec.title": "x"}))
    assert tensor_problem(info, "sdxl_train") is None and info.metadata == {"modelspec.title": "x"}
    info = read_safetensors(_file(tmp_path, LORA))
    assert tensor_problem(info, "sdxl_train_network") is None


@pytest.mark.parametrize("cut", [1, 8, 40])
def test_verify_rejects_a_truncated_file(tmp_path, cut):
    with pytest.raises(NotSafetensors):
        read_safetensors(_file(tmp_path, CHECKPOINT, cut=cut))


def test_verify_rejects_bad_headers(tmp_path):
    path = tmp_path / "bad.safetensors"
    for data in (b"", b"\x05\x00\x00\x00\x00\x00\x00\x00{nope", struct.pack("<Q", 2) + b"[]",
                 struct.pack("<Q", 10**12) + b"{}"):
        path.write_bytes(data)
        with pytest.raises(NotSafetensors):
            read_safetensors(path)
    header = json.dumps({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    with pytest.raises(NotSafetensors, match="4 bytes for F32"):
        read_safetensors(path)


def test_verify_names_missing_parts(tmp_path):
    info = read_safetensors(_file(tmp_path, {k: v for k, v in CHECKPOINT.items() if not k.startswith("first_stage")}))
    assert "first_stage_model.*" in tensor_problem(info, "sdxl_train")
    assert "not a LoRA" in tensor_problem(read_safetensors(_file(tmp_path, CHECKPOINT)), "sdxl_train_network")
    half = {k: v for k, v in LORA.items() if "up" not in k}
    assert "lora_up" in tensor_problem(read_safetensors(_file(tmp_path, half)), "sdxl_train_network")
    assert "holds no tensors" in tensor_problem(read_safetensors(_file(tmp_path, {})), "sdxl_train")

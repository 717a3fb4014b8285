"""Builds the stand-ins the training tests run as real child processes.

- ``make_fake_sd_scripts(root)``: a folder shaped like an sd-scripts checkout (``sdxl_train.py``,
  ``sdxl_train_network.py``, ``networks/sdxl_merge_lora.py``, ``networks/lora.py``) whose scripts
  parse their arguments with a parser generated from the committed option manifest
  (``standin_lib.py`` beside this file is copied in with the manifest).
- ``make_fake_accelerate(root)``: a package ``accelerate.commands.launch`` that starts the script
  in a child process with the same Python and waits, as accelerate's ``simple_launcher`` does
  (including its exit code 1 and CalledProcessError on a failed script). Put ``root`` on
  PYTHONPATH.
- ``make_sdxl_checkpoint(path)``: a tiny single-file "SDXL checkpoint" with the key prefixes of a
  real one (``model.diffusion_model.``, ``conditioner.embedders.0/1.``, ``first_stage_model.``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import swimlatent_wrap.sdscripts.manifest as manifest_module

HERE = Path(__file__).resolve().parent

_SCRIPT = """\
import os, sys
sys.path.insert(0, {up})
import standin_lib
standin_lib.main({name!r})
"""

_LAUNCH = '''\
"""Stand-in for accelerate.commands.launch (simple_launcher): run the script with this Python.
Real tier: every run in tests/real goes through the real `python -m accelerate.commands.launch`."""
import subprocess
import sys


def main():
    argv = sys.argv[1:]
    for index, item in enumerate(argv):
        if item.endswith(".py"):
            break
    else:
        print("accelerate launch: no training script given", file=sys.stderr)
        sys.exit(2)
    cmd = [sys.executable, item, *argv[index + 1:]]
    process = subprocess.Popen(cmd)
    process.wait()
    if process.returncode != 0:
        raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)


if __name__ == "__main__":
    main()
'''


def make_fake_sd_scripts(root: Path) -> Path:
    root = Path(root)
    (root / "networks").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "standin_lib.py", root / "standin_lib.py")
    shutil.copyfile(manifest_module.MANIFEST_PATH, root / "standin_manifest.json")
    (root / "sdxl_train.py").write_text(_SCRIPT.format(up="os.path.dirname(os.path.abspath(__file__))", name="sdxl_train"))
    (root / "sdxl_train_network.py").write_text(
        _SCRIPT.format(up="os.path.dirname(os.path.abspath(__file__))", name="sdxl_train_network")
    )
    # the release tests' stand-ins: a real-math LoRA merge and an image generator for sweeps
    shutil.copyfile(HERE.parent / "release" / "merge_standin.py", root / "networks" / "sdxl_merge_lora.py")
    shutil.copyfile(HERE.parent / "release" / "gen_img_standin.py", root / "sdxl_gen_img.py")
    (root / "networks" / "lora.py").write_text('"""stand-in: networks.lora is imported by name only"""\n')
    (root / "requirements.txt").write_text("# stand-in checkout: nothing to install\n")
    return root


def make_fake_accelerate(root: Path) -> Path:
    package = Path(root) / "accelerate"
    (package / "commands").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""stand-in accelerate (tests only)"""\n')
    (package / "commands" / "__init__.py").write_text("")
    (package / "commands" / "launch.py").write_text(_LAUNCH)
    return Path(root)


def make_sdxl_checkpoint(path: Path, *, value: float = 0.0) -> Path:
    import sys

    sys.path.insert(0, str(HERE))
    try:
        import standin_lib
    finally:
        sys.path.remove(str(HERE))
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": ("F16", [2, 2], [0.5] * 4),
        "model.diffusion_model.out.2.bias": ("F32", [4], [value] * 4),
        # the layers the stand-in LoRA trains (standin_lib: up 4×dim @ down dim×4)
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight": ("F32", [4, 4], [0.0] * 16),
        "model.diffusion_model.middle_block.1.proj_in.weight": ("F32", [4, 4], [0.0] * 16),
        "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": ("F16", [4], [1.0] * 4),
        "conditioner.embedders.1.model.ln_final.weight": ("F16", [4], [1.0] * 4),
        "first_stage_model.decoder.conv_out.bias": ("F32", [3], [0.0] * 3),
    }
    standin_lib.write_safetensors(path, tensors, None)
    return Path(path)


def tracked_value(path: Path) -> float:
    """Steps that went into a stand-in output: the fine-tune's tracked tensor, or a LoRA's up weight."""
    import sys

    sys.path.insert(0, str(HERE))
    try:
        import standin_lib
    finally:
        sys.path.remove(str(HERE))
    _, tensors = standin_lib.read_safetensors(path)
    if standin_lib.TRACKED in tensors:
        return tensors[standin_lib.TRACKED][2][0]
    ups = [t[2][0] for k, t in tensors.items() if k.endswith(".lora_up.weight")]
    return ups[0]

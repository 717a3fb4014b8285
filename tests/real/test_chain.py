"""The shipped chain trained for real: base → ft (interrupted and resumed) → lora → sweep → merge →
stamp → release, each through the `swimlatent` CLI, with sd-scripts at the pinned commit on CPU.

The tests run in file order and share one workdir (each stage starts from the one before), and
delete what the next ones do not read (the chain's peak is about 60 GB of disk). Every
assertion is one that only a real run can satisfy: tensors compared element by element with the
stage's input, learning rates read back from the weights and from sd-scripts' own TensorBoard
logs, the merge recomputed here from the LoRA's tensors, the release hash recomputed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from swimlatent_wrap.stages.verify import sha256_file as sha256
from tests.real.conftest import ROWS, Lab, draw_images
from tests.real.tensors import TensorFile, compare, part_of_sdxl
from tests.real.watchdog import GIB, Watchdog

pytestmark = [pytest.mark.real, pytest.mark.timeout(3600)]

LR_FINE_TUNE = 4e-6  # the seed's, inherited from base.toml
LR_LORA = 5e-5


def cosine_with_restarts(base: float, position: int, total: int, cycles: int = 1) -> float:
    """transformers' get_cosine_with_hard_restarts_schedule_with_warmup (no warmup), written out."""
    progress = position / max(1, total)
    if progress >= 1.0:
        return 0.0
    return base * max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((cycles * progress) % 1.0))))


def assert_fine_tuned(lab: Lab, before: Path, after: Path, step_lrs: list[float]) -> float:
    """The U-Net moved where the optimizer moved it; text encoders and VAE are bit-for-bit the input.

    Lion moves every weight by exactly ±lr per step (weight decay 0). With fp32 master weights
    saved in fp32 (the recipes leave save_precision unset), every element whose gradient was not
    exactly zero changes, and by a sum of ±lr terms: never more than the sum of the step rates.
    Returns the changed fraction of the U-Net's elements."""
    change = compare(before, after, part_of_sdxl)
    for frozen in ("text_encoder_1", "text_encoder_2", "vae"):
        assert change[frozen].changed == 0, f"{frozen} changed in {change[frozen].changed} elements; it is not trained"
    unet = change["unet"]
    assert unet.fraction > 0.99, f"only {unet.fraction:.2%} of the U-Net's {unet.elements} elements changed"
    assert unet.max_abs <= sum(step_lrs) * 1.001, f"a weight moved {unet.max_abs:g}, more than the steps' lr sum {sum(step_lrs):g}"
    # One large tensor in detail: each element moved by one of the ±lr combinations of the steps.
    a, b = TensorFile.open(before), TensorFile.open(after)
    name = "model.diffusion_model.output_blocks.2.1.transformer_blocks.0.ff.net.0.proj.weight"
    delta = np.abs(b.read(name).astype(np.float64) - a.read(name).astype(np.float64)).ravel()
    sums = {abs(sum(sign * lr for sign, lr in zip(signs, step_lrs))) for signs in itertools.product((1, -1), repeat=len(step_lrs))}
    nearest = np.min(np.abs(delta[:, None] - np.array(sorted(sums))[None, :]), axis=1)
    on_grid = float(np.mean(nearest < 1e-8))  # fp32 rounding at |w| ≈ 0.02 is ~2e-9 per step
    assert on_grid > 0.999, f"{name}: only {on_grid:.3%} of the changes are sums of ±lr {step_lrs} (Lion's steps)"
    return unet.fraction


def tensorboard_scalars(lab: Lab, run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """sd-scripts' own logs of a run (run_dir/logs), read with tensorboard in sd-scripts' Python."""
    code = (
        "import json, sys, glob\n"
        "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n"
        "out = {}\n"
        "for path in sorted(glob.glob(sys.argv[1] + '/**/events.out.tfevents.*', recursive=True)):\n"
        "    acc = EventAccumulator(path); acc.Reload()\n"
        "    for tag in acc.Tags()['scalars']:\n"
        "        out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))\n"
        "print(json.dumps(out))\n")
    return json.loads(lab.sd(code, str(run_dir / "logs")))


def test_base_trains_the_unet_from_the_checkpoint(lab: Lab):
    result = lab.cli("run", str(lab.recipes / "base.toml"), "--allow-cpu", row="base: sdxl_train (base-24gb)")
    assert result.returncode == 0, result.explain()
    placed = lab.workdir / "models" / "base.safetensors"
    run_dir = lab.runs("base")[-1]
    record = lab.record(run_dir)
    assert record["status"] == "ok" and record["output"]["placed"] == str(placed)
    assert record["output"]["sha256"] == sha256(placed)
    assert record["input_model"]["path"] == str(lab.checkpoint) and record["input_model"]["sha256"] == sha256(lab.checkpoint)
    assert record["host"]["allow_cpu"] is True
    assert record["schedule"]["total_steps"] == 2  # read from sd-scripts' own "total optimization steps" line
    # 2 steps of the recipe's schedule: positions 0 and 1 of a 2-step cosine
    fraction = assert_fine_tuned(lab, lab.checkpoint, placed, [cosine_with_restarts(LR_FINE_TUNE, p, 2) for p in (0, 1)])
    lab.last_row.note = f"U-Net elements changed: {fraction:.2%} (2 steps, lr 4e-6)"


def test_full_bf16_at_the_seeds_learning_rate_leaves_most_of_the_unet_in_place(lab: Lab):
    """Why the shipped fine-tunes keep fp32 master weights: the base stage's data, seed and
    schedule with the weights in bf16 (`full_bf16`, what base.toml shipped before) and Lion at
    the seed's 4e-6. `validate` refuses it; accepted through `[checks] allow_rounded_updates`, it
    trains and most of the U-Net does not move (a 4e-6 step is under half a bf16 rounding step for
    every |w| ≥ 2⁻⁹)."""
    recipe = lab.recipes / "bf16.toml"
    recipe.write_text('extends = "base.toml"\nname = "bf16"\n[args]\nfull_bf16 = true\noptimizer_type = "Lion"\n')
    refused = subprocess.run(lab.argv("validate", str(recipe)), env=lab.env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "args.learning_rate" in refused.stderr, refused.stderr
    recipe.write_text(recipe.read_text() + "[checks]\nallow_rounded_updates = true\n")
    result = lab.cli("train", str(recipe), "--allow-cpu", row="full_bf16 + Lion 4e-6 (contrast)")
    assert result.returncode == 0, result.explain()
    change = compare(lab.checkpoint, lab.workdir / "models" / "bf16.safetensors", part_of_sdxl)["unet"]
    fp32_master = compare(lab.checkpoint, lab.workdir / "models" / "base.safetensors", part_of_sdxl)["unet"]
    lab.last_row.note = f"U-Net elements changed: {change.fraction:.2%} (fp32 master, same data: {fp32_master.fraction:.2%})"
    assert change.fraction < 0.25 < 0.99 < fp32_master.fraction
    (lab.workdir / "models" / "bf16.safetensors").unlink()  # disk: the rest of the chain needs ~50 GB


def test_ft_is_interrupted_after_a_saved_state_and_resumes_on_the_same_schedule(lab: Lab):
    recipe = lab.recipes / "ft.toml"
    log = lab.root / "ft-interrupted.log"
    started = time.monotonic()
    with open(log, "w") as out:
        process = lab.start("train", str(recipe), "--allow-cpu", stdout=out)
        dog = Watchdog(process.pid, int(21 * GIB)).start()
        state = None
        # Wait for the epoch-1 state to be complete (accelerate writes the RNG states last).
        while process.poll() is None and state is None:
            for run_dir in lab.runs("ft"):
                marker = run_dir / "output" / "ft-000001-state" / "random_states_0.pkl"
                if marker.is_file():
                    state = marker.parent
            if state is None:
                time.sleep(1)
        assert state is not None, f"no epoch-1 state was saved; exit {process.returncode}: {log.read_text()[-3000:]}"
        os.kill(process.pid, signal.SIGINT)  # what Ctrl-C sends to the CLI; it forwards it to sd-scripts
        _, stderr = process.communicate(timeout=900)
        dog.stop()
    from tests.real.conftest import Row

    ROWS.append(Row("ft: interrupted after epoch 1", time.monotonic() - started, None, dog.peak / GIB,
                    dog.peak_anonymous / GIB, "SIGINT"))
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert not (lab.workdir / "models" / "ft.safetensors").exists()
    interrupted = state.parent.parent
    assert lab.record(interrupted)["status"] == "interrupted"

    result = lab.cli("train", str(recipe), "--resume", "--allow-cpu", row="ft: resumed (continued schedule)")
    assert result.returncode == 0, result.explain()
    resumed = lab.runs("ft")[-1]
    record = lab.record(resumed)
    assert record["status"] == "ok" and record["resume"]["state"] == str(state)
    placed = lab.workdir / "models" / "ft.safetensors"
    base = lab.workdir / "models" / "base.safetensors"
    # ft starts from base's placed output, as recorded by the run that placed it
    base_record = lab.record(lab.runs("base")[-1])
    assert record["input_model"]["path"] == str(base)
    assert record["input_model"]["sha256"] == base_record["output"]["sha256"]

    curve = [cosine_with_restarts(LR_FINE_TUNE, p, 2) for p in (0, 1, 2)]  # the uninterrupted 2-step schedule
    # The learning rates from the weights: epoch 1's model vs base is step 1 alone, the final model
    # vs epoch 1's is the resumed step alone. A resume that rebuilt the schedule for the one step
    # left would have used lr 0 there (the end of a 1-step cosine); one that restarted, 2 steps.
    epoch1 = interrupted / "output" / "ft-000001.safetensors"
    assert_fine_tuned(lab, base, epoch1, [curve[0]])
    fraction = assert_fine_tuned(lab, epoch1, placed, [curve[1]])
    assert_fine_tuned(lab, base, placed, curve[:2])
    lab.last_row.note = f"U-Net changed: {fraction:.2%} in the resumed step (lr {curve[1]:g})"
    # …and from sd-scripts' own logs: the rate after each step (get_last_lr) at its absolute position.
    first = tensorboard_scalars(lab, interrupted)
    then = tensorboard_scalars(lab, resumed)
    lr_tag = next(tag for tag in first if tag.startswith("lr/"))
    assert [round(v, 12) for _, v in first[lr_tag]] == [round(curve[1], 12)], first[lr_tag]
    assert [round(v, 12) for _, v in then[lr_tag]] == [round(curve[2], 12)], then[lr_tag]
    # disk: what the rest of the chain does not read (base's model, the states, epoch 1's model)
    base.unlink()
    shutil.rmtree(interrupted / "output")
    for folder in (resumed / "output").glob("ft*-state"):
        shutil.rmtree(folder)


def test_lora_trains_sweeps_merges_and_releases(lab: Lab):
    result = lab.cli("run", str(lab.recipes / "lora.toml"), "--allow-cpu",
                     row="lora: train, sweep, merge, stamp")
    assert result.returncode == 0, result.explain()
    ft = lab.workdir / "models" / "ft.safetensors"
    lora = TensorFile.open(lab.workdir / "models" / "lora.safetensors")
    record = lab.record(lab.runs("lora")[-1])
    assert record["input_model"]["path"] == str(ft)
    assert record["input_model"]["sha256"] == lab.record(lab.runs("ft")[-1])["output"]["sha256"]
    assert lora.metadata["ss_new_sd_model_hash"] == sha256(ft)  # sd-scripts' own record of what it trained on
    ups = [n for n in lora.names() if n.endswith("lora_up.weight")]
    assert ups and all(n.startswith("lora_unet_") for n in ups)  # network_train_unet_only
    # lora_up starts at zero in networks.lora: after two steps every up matrix has moved
    moved = [n for n in ups if np.any(lora.read(n) != 0)]
    assert len(moved) == len(ups), f"{len(ups) - len(moved)} of {len(ups)} lora_up matrices are still zero"
    total = sum(lora.read(n).size for n in ups)
    nonzero = sum(int(np.count_nonzero(lora.read(n))) for n in ups)
    lab.last_row.note = f"LoRA up elements moved: {nonzero / total:.2%}"
    assert nonzero / total > 0.99

    # the sweep: one real image per cell, and the grid
    sweep_dir = sorted((lab.workdir / "sweeps" / "lora").iterdir())[-1]
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    assert [cell["ratio"] for cell in sweep["images"]] == [0.0, 1.0]
    from PIL import Image

    for cell in sweep["images"]:
        with Image.open(sweep_dir / cell["file"]) as image:
            assert image.size == (256, 256)
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        assert pixels.std() > 1.0, f"{cell['file']} is a flat image"
    assert (sweep_dir / "grid.png").is_file()

    # the merge, recomputed here: W + ratio × (up @ down) × alpha / dim, in fp16 as sd-scripts computes it
    release = lab.workdir / "release" / "SwimInLatent.safetensors"
    merged, base = TensorFile.open(release), TensorFile.open(ft)
    by_module = {name.removeprefix("model.diffusion_model.").removesuffix(".weight").replace(".", "_"): name
                 for name in base.names() if name.startswith("model.diffusion_model.") and name.endswith(".weight")}
    ratio = 0.75  # lora.toml's [merge] ratio
    checked = 0
    for up_name in ups[:: max(1, len(ups) // 12)]:
        module = up_name.removesuffix(".lora_up.weight")
        target = by_module[module.removeprefix("lora_unet_")]
        up, down = lora.read(up_name), lora.read(module + ".lora_down.weight")
        alpha = float(lora.read(module + ".alpha"))
        w = base.read(target).astype(np.float16)
        if up.ndim == 2:
            product = (up.astype(np.float16).astype(np.float32) @ down.astype(np.float16).astype(np.float32)).astype(np.float16)
        else:  # 1×1 conv
            product = (up[:, :, 0, 0].astype(np.float16).astype(np.float32)
                       @ down[:, :, 0, 0].astype(np.float16).astype(np.float32)).astype(np.float16)[:, :, None, None]
        expected = (w + (product * np.float16(ratio)) * np.float16(alpha / down.shape[0])).astype(np.float32)
        got = merged.read(target)
        tolerance = np.abs(expected) * 2.0 ** -9 + 2.0 ** -24  # two fp16 rounding steps
        assert np.all(np.abs(got - expected) <= tolerance), f"{target}: merged values differ from W + r·(up@down)·α/dim"
        assert np.mean(got == expected) > 0.95, f"{target}: merged values are not the fp16 result"
        checked += 1
    assert checked >= 10
    # frozen in the merge: the VAE is the ft model's, in the release dtype
    vae = next(n for n in base.names() if n.startswith("first_stage_model.") and n.endswith(".weight"))
    assert np.array_equal(merged.read(vae), base.read(vae).astype(np.float16).astype(np.float32))

    # the release: ModelSpec stamped, hash of the data section verified by inspect
    shown = subprocess.run(lab.argv("inspect", str(release), "--verify", "--json"), env=lab.env(), capture_output=True,
                           text=True, timeout=600)
    assert shown.returncode == 0, shown.stderr
    metadata = merged.metadata
    assert metadata["modelspec.title"] == "SwimInLatent" and metadata["modelspec.author"] == "ddPn08"
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base"
    digest = hashlib.sha256()
    with open(release, "rb") as handle:
        handle.seek(merged.data_start)
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    assert metadata["modelspec.hash_sha256"] == "0x" + digest.hexdigest()

    # the merge's host-memory check (release/merge.py) against what the merge really took
    from swimlatent_wrap.release.merge import merge_host_bytes

    measured = result.phases["sdxl_merge_lora"].peak_anonymous
    estimate = merge_host_bytes(ft, lab.workdir / "models" / "lora.safetensors", "fp16", "fp16")
    assert measured <= estimate <= 1.6 * measured, f"merge: estimated {estimate / GIB:.1f} GiB, measured {measured / GIB:.1f} GiB"


def broken_recipe(lab: Lab, name: str, folder: Path, extra: str = "") -> Path:
    """The lab's LoRA recipe on another folder, from the checkpoint (no stage chain, no release)."""
    text = (lab.recipes / "lora.toml").read_text()
    text = text.replace('name = "lora"', f'name = "{name}"\nmodel = "{lab.checkpoint}"', 1)
    text = text.replace('name = "real-lora"', f'name = "{name}"').replace(str(lab.data / "lora"), str(folder))
    path = lab.recipes / f"{name}.toml"
    path.write_text(text + extra)
    return path


def first_error(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.strip() and not line.startswith("swimlatent"))


def test_a_corrupt_image_fails_in_one_line_naming_it(lab: Lab):
    folder = lab.data / "corrupt"
    draw_images(folder, 1, seed=9)
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 10)
    (folder / "bad.txt").write_text("new, newest, masterpiece, best quality, 1girl\n")
    result = lab.cli("train", str(broken_recipe(lab, "corrupt", folder)), "--allow-cpu", row="corrupt image (fails)")
    assert result.returncode == 1, result.explain()
    line = first_error(result.stderr)
    assert "failed" in line and "bad.png" in line, result.stderr[-3000:]
    assert "Traceback" not in result.stderr.split(line)[0]
    assert not (lab.workdir / "models" / "corrupt.safetensors").exists()


def test_sd_scripts_finding_no_data_is_an_error_not_a_success(lab: Lab):
    """sd-scripts logs "No data found" and exits 0 without a model (facts §0.9). `validate` now refuses
    num_repeats = 0 (issue 10), so the way there is a fine-tuning metadata file that lists no image:
    its content is sd-scripts' data, which neither validate nor preflight reads."""
    folder = lab.data / "empty"
    draw_images(folder, 1, seed=11)
    metadata = lab.data / "empty-metadata.json"
    metadata.write_text("{}\n", encoding="utf-8")
    recipe = broken_recipe(lab, "nodata", folder)
    recipe.write_text(recipe.read_text().replace("[dataset]\n", f'[dataset]\nmetadata_file = "{metadata}"\n', 1))
    result = lab.cli("train", str(recipe), "--allow-cpu", row="no data found (fails)")
    assert result.returncode == 1, result.explain()
    line = first_error(result.stderr)
    assert "exited 0 but wrote no model" in line, result.stderr[-3000:]
    assert "No data found" in (lab.runs("nodata")[-1] / "log").read_text()
    assert lab.record(lab.runs("nodata")[-1])["status"] == "no_output"

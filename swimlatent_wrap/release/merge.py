"""`swimlatent merge`: sd-scripts' networks/sdxl_merge_lora.py at the recipe's ratio, then proof that
every LoRA module changed the model tensor it targets (facts §3: sd-scripts only logs the keys it
skips), then the result placed atomically at models/merged.safetensors.

    merge_argv(recipe, workdir, sd_scripts, save_to) -> list[str]   pure; option names checked
    verify_merge(base, lora, merged) -> MergeCheck                   streamed, tensor by tensor
    run_merge(recipe, workdir, sd_scripts, dry_run=False) -> Path | None

Verification never holds a whole model: each tensor pair is read by offset in slices of at most
SLICE_ELEMENTS elements, converted to float32 (BF16 through uint16 << 16) and compared with the
base rounded to the merged file's dtype, so a save_precision cast alone is not a "change".
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.modelspec import safetensors_file as st
from swimlatent_wrap.release.lora_targets import module_targets
from swimlatent_wrap.recipe import Recipe
from swimlatent_wrap.workdir import MERGE_RUNS, MERGED_STAGE, Workdir, new_run_folder

SCRIPT = "sdxl_merge_lora"
UNET_PREFIX = "model.diffusion_model."
TE1_PREFIX = "conditioner.embedders.0.transformer."
SLICE_ELEMENTS = 4 * 1024 * 1024
FLOAT_DTYPES = ("F32", "F16", "BF16")


@dataclass
class MergeCheck:
    modules: list[str]  # LoRA modules that were checked
    changed: list[str] = field(default_factory=list)  # model tensors that differ from the base
    missing_target: list[str] = field(default_factory=list)  # modules with no tensor in the model
    unchanged: list[str] = field(default_factory=list)  # modules whose target is identical to the base
    unexpected: list[str] = field(default_factory=list)  # changed tensors no module targets
    not_checked: list[str] = field(default_factory=list)  # kept for the record's shape; every module is checked now

    @property
    def ok(self) -> bool:
        return not (self.missing_target or self.unchanged or self.unexpected)

    def as_dict(self) -> dict:
        return {"modules": len(self.modules), "changed_tensors": len(self.changed),
                "missing_target": self.missing_target, "unchanged": self.unchanged,
                "unexpected_changes": self.unexpected, "not_checked": self.not_checked}


def lora_name(model_key: str) -> str | None:
    """The LoRA module name sd-scripts gives the layer holding ``model_key`` (a ``.weight``), or None."""
    if not model_key.endswith(".weight"):
        return None
    for prefix, lora_prefix in ((UNET_PREFIX, "lora_unet_"), (TE1_PREFIX, "lora_te1_")):
        if model_key.startswith(prefix):
            flat = model_key.replace(".", "_")
            return lora_prefix + flat[len(prefix.replace(".", "_")): -len("_weight")]
    return None


def merge_argv(recipe: Recipe, workdir: Workdir, sd_scripts: Path, save_to: Path) -> list[str]:
    from swimlatent_wrap.sdscripts.command import command_argv
    from swimlatent_wrap.sdscripts.manifest import load_manifest

    python = recipe.launch.python or sys.executable
    options = {
        "sd_model": base_model_path(recipe, workdir),
        "models": [workdir.model_path(recipe.name)],
        "ratios": [recipe.merge.ratio],
        "save_precision": recipe.merge.save_precision,
        "precision": recipe.merge.precision,
        "save_to": save_to,
    }
    return command_argv(load_manifest(), SCRIPT, python=python, sd_scripts=sd_scripts, options=options)


PRECISION_BYTES = {"float": 4, "fp16": 2, "bf16": 2}
# Python, torch and sd-scripts' modules in the merge process, measured in the real tier with a
# random-weight SDXL checkpoint (the rest of its peak is the two copies below).
MERGE_BASELINE_BYTES = 1_500_000_000


def merge_host_bytes(base: Path, lora: Path, precision: str, save_precision: str) -> int:
    """Host RAM sdxl_merge_lora.py needs (it always merges on the CPU, facts §3): the whole model in
    the merge dtype, plus the copy sd-scripts makes in the save dtype before writing, plus the LoRA
    and the process itself. fp32 merge + fp16 save of SDXL: about 22 GB; fp16 + fp16: about 15 GB."""
    elements = sum(math.prod(shape) for _, shape in st.read_safetensors(base).tensors.values())
    return (elements * (PRECISION_BYTES[precision] + PRECISION_BYTES[save_precision]) + 2 * lora.stat().st_size
            + MERGE_BASELINE_BYTES)


def available_memory() -> int | None:
    """MemAvailable, in bytes (None where it cannot be read)."""
    from swimlatent_wrap.host import meminfo

    return meminfo("MemAvailable")


def check_host_memory(recipe, base: Path, lora: Path) -> None:
    need = merge_host_bytes(base, lora, recipe.merge.precision, recipe.merge.save_precision)
    free = available_memory()
    if free is not None and free < need:
        cheaper = ""
        if recipe.merge.precision == "float":
            cheaper = (f"; [merge] precision = \"fp16\" needs about "
                       f"{merge_host_bytes(base, lora, 'fp16', recipe.merge.save_precision) / 1e9:.1f} GB")
        raise UserError(f"the merge needs about {need / 1e9:.1f} GB of RAM ([merge] precision = {recipe.merge.precision!r}, "
                        f"save_precision = {recipe.merge.save_precision!r}) and {free / 1e9:.1f} GB is available: "
                        f"sd-scripts merges in host memory and would be killed while saving{cheaper}")


def base_model_path(recipe: Recipe, workdir: Workdir) -> Path:
    """The model the LoRA was trained on: a stage's output, the local file, or the Hub file train fetched."""
    model = recipe.model
    if model.kind == "stage":
        return workdir.model_path(model.stage)
    if model.kind == "hf":
        return workdir.hub_file(model.repo_id, model.filename)
    return model.path


# --------------------------------------------------------------------------------------------
# Verification


def _as_float32(raw: bytes, dtype: str):
    import numpy as np

    if dtype == "F32":
        return np.frombuffer(raw, dtype="<f4")
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if dtype == "BF16":
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    raise ValueError(dtype)


def _round_to(values, dtype: str):
    """float32 values as the merged file would store them in ``dtype``, back in float32."""
    import numpy as np

    if dtype == "F32":
        return values
    if dtype == "F16":
        return values.astype(np.float16).astype(np.float32)
    bits = values.view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)  # nearest even, as torch
    return (rounded.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _tensor_changed(base_f, base: st.Safetensors, merged_f, merged: st.Safetensors, name: str,
                    rows: tuple[int, int] | None = None) -> bool:
    """Whether ``name`` (only its dim-0 ``rows`` when given) differs between the two files beyond the
    dtype cast; read in slices of at most SLICE_ELEMENTS elements."""
    import numpy as np

    b_dtype, shape = base.tensors[name]
    m_dtype, m_shape = merged.tensors[name]
    if m_shape != shape:
        return True
    per_row = math.prod(shape[1:]) if shape else 1
    first_element, end_element = (0, math.prod(shape)) if rows is None else (rows[0] * per_row, rows[1] * per_row)
    b_size, m_size = st.DTYPE_BYTES[b_dtype], st.DTYPE_BYTES[m_dtype]
    b_start, m_start = base.offsets[name][0], merged.offsets[name][0]
    exact = b_dtype not in FLOAT_DTYPES or m_dtype not in FLOAT_DTYPES
    if exact and b_dtype != m_dtype:
        return True
    for first in range(first_element, end_element, SLICE_ELEMENTS):
        n = min(SLICE_ELEMENTS, end_element - first)
        b_raw = _read(base_f, base, b_start + first * b_size, n * b_size)
        m_raw = _read(merged_f, merged, m_start + first * m_size, n * m_size)
        if exact:
            if b_raw != m_raw:
                return True
            continue
        b, m = _as_float32(b_raw, b_dtype), _as_float32(m_raw, m_dtype)
        if not np.array_equal(_round_to(b, m_dtype), m, equal_nan=True):
            return True
    return False


def _read(handle, info: st.Safetensors, start: int, length: int) -> bytes:
    handle.seek(info.header_bytes + start)
    data = handle.read(length)
    if len(data) != length:
        raise UserError(f"{info.path}: file ended while reading its tensors (changed during the check?)")
    return data


def _read_model(path: Path, what: str) -> st.Safetensors:
    try:
        return st.read_safetensors(path)
    except st.NotSafetensors as error:
        raise UserError(f"{what} {path}: {error}") from None


def verify_merge(base_path: Path, lora_path: Path, merged_path: Path) -> MergeCheck:
    """Compare the merged model with its base, tensor by tensor, against the LoRA's modules."""
    base = _read_model(base_path, "base model")
    lora = _read_model(lora_path, "LoRA")
    merged = _read_model(merged_path, "merged model")
    suffix = ".lora_down.weight"
    modules = sorted(n[: -len(suffix)] for n in lora.tensors if n.endswith(suffix))
    if not modules:
        raise UserError(f"LoRA {lora_path}: no *.lora_down.weight tensors: not a LoRA")
    missing = sorted(set(base.tensors) - set(merged.tensors))
    if missing:
        raise UserError(f"merged model {merged_path}: {len(missing)} tensors of the base model are missing, e.g. {missing[0]}")
    # lora_te2_* included: their q/k/v share one fused tensor, each module checked on its own rows
    targets = module_targets(base.tensors)
    check = MergeCheck(modules=modules)
    with open(base.path, "rb") as base_f, open(merged.path, "rb") as merged_f:
        for name in base.tensors:
            if _tensor_changed(base_f, base, merged_f, merged, name):
                check.changed.append(name)
        changed = set(check.changed)
        targeted = set()
        for module in check.modules:
            target = targets.get(module)
            if target is None:
                check.missing_target.append(module)
                continue
            targeted.add(target.key)
            if target.key not in changed or (
                    target.rows is not None and not _tensor_changed(base_f, base, merged_f, merged, target.key, target.rows)):
                check.unchanged.append(module)
    check.unexpected = sorted(changed - targeted)
    return check


def describe_failure(check: MergeCheck, merged_path: Path) -> UserError:
    lines = [f"merge check failed: {len(check.changed)} model tensors changed for {len(check.modules)} LoRA modules "
             f"({merged_path} was not placed)"]
    if check.missing_target:
        lines.append(f"{len(check.missing_target)} LoRA modules have no target in the model: " + ", ".join(check.missing_target))
    if check.unchanged:
        lines.append(f"{len(check.unchanged)} LoRA modules left their target unchanged (not merged): " + ", ".join(check.unchanged))
    if check.unexpected:
        lines.append(f"{len(check.unexpected)} model tensors changed that no LoRA module targets: " + ", ".join(check.unexpected))
    return UserError(*lines)


# --------------------------------------------------------------------------------------------
# The command


def run_merge(recipe, workdir, sd_scripts: Path, *, dry_run: bool = False) -> Path | None:
    from swimlatent_wrap import runner

    run_dir = new_run_folder(workdir.stage_runs(MERGE_RUNS), create=False)
    save_to = run_dir / "merged.safetensors"
    argv = merge_argv(recipe, workdir, sd_scripts, save_to)
    if dry_run:
        print(runner.format_command(argv))
        return None
    base, lora = base_model_path(recipe, workdir), workdir.model_path(recipe.name)
    for path, what in ((base, "base model"), (lora, "LoRA")):
        if not path.is_file():
            raise UserError(f"{what} {path} not found; train it first (swimlatent train / make)")
        _read_model(path, what)
    script = Path(argv[1])
    if not script.is_file():
        raise UserError(f"{script} not found: is --sd-scripts ({sd_scripts}) an sd-scripts checkout?")
    check_host_memory(recipe, base, lora)
    run_dir.mkdir(parents=True)
    # sdxl_merge_lora.py always works in host RAM (facts §3): the CPU environment applies everywhere.
    from swimlatent_wrap.sdscripts.cpu import environment

    runner.run(argv, log_path=run_dir / "log", cwd=Path(sd_scripts), env=environment(dict(os.environ)))
    if not save_to.is_file():
        raise UserError(f"{SCRIPT}.py exited 0 but wrote no {save_to}; see {run_dir / 'log'}")
    check = verify_merge(base, lora, save_to)
    record = {"argv": argv, "base": str(base), "lora": str(lora), "ratio": recipe.merge.ratio,
              "check": check.as_dict(), "placed": None}
    if not check.ok:
        _write_json(run_dir / "merge.json", record)
        raise describe_failure(check, save_to)
    target = workdir.model_path(MERGED_STAGE)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(save_to, target)
    record["placed"] = str(target)
    _write_json(run_dir / "merge.json", record)
    note = f"; {len(check.not_checked)} lora_te2 modules not checked" if check.not_checked else ""
    print(f"merge verified: {len(check.changed)} model tensors changed for {len(check.modules)} LoRA modules{note}")
    print(f"placed {target}")
    return target


def _write_json(path: Path, data: dict) -> None:
    from swimlatent_wrap.atomic import write_text

    write_text(path, json.dumps(data, indent=2) + "\n")

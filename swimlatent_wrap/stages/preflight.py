"""Checks before anything slow (issue item 4): a CUDA GPU for sd-scripts' Python (asked in a child:
the wrapper never imports torch), the sd-scripts checkout and its commit, the dataset, the input
model, free disk. Every problem is collected and reported at once, one line each."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from swimlatent_wrap import runner
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.host import meminfo
from swimlatent_wrap.images import has_caption, images_in
from swimlatent_wrap.modelspec.safetensors_file import NotSafetensors, read_safetensors
from swimlatent_wrap.recipe import HubRef
from swimlatent_wrap.sdscripts.manifest import load_manifest
from swimlatent_wrap.stages import tokenizers
from swimlatent_wrap.stages.effective import EffectiveArgs
from swimlatent_wrap.stages.plan import Plan
from swimlatent_wrap.stages.verify import tensor_problem
from swimlatent_wrap.workdir import Workdir

if TYPE_CHECKING:
    from swimlatent_wrap.stages.hub import RemoteFile

# Printed by the sd-scripts Python: whether torch sees CUDA, and the devices' names.
CUDA_PROBE = (
    "import json, torch\n"
    "ok = torch.cuda.is_available()\n"
    "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'available': ok,\n"
    "                  'devices': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if ok else []}))\n"
)
GB = 1e9
CPU_STEPS = ("collect, tag, plan, stamp, inspect and `swimlatent train --dry-run` work without one; "
             "`swimlatent smoke RECIPE` trains one real step of each stage on this CPU in minutes, and "
             "--allow-cpu trains here anyway (minutes per step, about 20 GB of RAM for a full fine-tune)")


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gpu: str | None = None
    torch: str | None = None
    sd_scripts_commit: str | None = None
    hub_remote: RemoteFile | None = None  # hf: refs not yet verified locally: the Hub's answer about the file
    tokenizers_to_fetch: Path | None = None  # an incomplete tokenizer cache that train fills from the Hub

    def fail_if_any(self) -> None:
        if self.problems:
            raise UserError(*self.problems)


def check_cuda(python: str, result: Preflight) -> None:
    probe = runner.probe([python, "-c", CUDA_PROBE], timeout=180)
    if probe.returncode == 127:
        result.problems.append(f"the Python for sd-scripts ({python}) was not found; run `make setup` or set [launch] python")
        return
    try:
        answer = json.loads(probe.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        reason = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        result.problems.append(f"cannot ask sd-scripts' Python ({python}) about CUDA ({reason}): training needs torch with a "
                               f"CUDA GPU there (`make setup` installs it); {CPU_STEPS}")
        return
    result.torch = answer.get("torch")
    if not answer.get("available"):
        build = f"torch {answer.get('torch')}" + (f" built for CUDA {answer['cuda']}" if answer.get("cuda") else " without CUDA")
        result.problems.append(f"no CUDA GPU visible to sd-scripts' Python ({python}, {build}): training needs one; {CPU_STEPS}")
        return
    result.gpu = ", ".join(answer.get("devices") or []) or None


def gpu_name_without_torch() -> str | None:
    probe = runner.probe(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], timeout=20)
    names = [line.strip() for line in probe.stdout.splitlines() if line.strip()] if probe.ok else []
    return ", ".join(names) or None


def sd_scripts_commit(sd_scripts: Path) -> str | None:
    """The checkout's own commit; None when ``sd_scripts`` is not the top of a git work tree (an
    unpacked archive inside another repository would otherwise report that repository's commit)."""
    probe = runner.probe(["git", "-C", str(sd_scripts), "rev-parse", "--show-toplevel", "HEAD"], timeout=20)
    lines = probe.stdout.strip().splitlines()
    if not probe.ok or len(lines) != 2 or len(lines[1]) != 40:
        return None
    try:
        if Path(lines[0]).resolve() != Path(sd_scripts).resolve():
            return None
    except OSError:
        return None
    return lines[1]


def check_sd_scripts(plan: Plan, sd_scripts: Path, result: Preflight) -> None:
    script_file = sd_scripts / load_manifest().script(plan.recipe.script).file
    if not script_file.is_file():
        result.problems.append(f"sd-scripts not found: no {script_file}; run `make setup` (it initialises vendor/sd-scripts) "
                               f"or point SWIMLATENT_SD_SCRIPTS / --sd-scripts at a checkout")
        return
    pinned = load_manifest().commit
    commit = sd_scripts_commit(sd_scripts)
    result.sd_scripts_commit = commit
    if commit is None:
        result.warnings.append(f"cannot tell which sd-scripts commit is at {sd_scripts} (not a git checkout); "
                               f"this wrapper's option manifest is for {pinned}")
    elif commit != pinned:
        result.warnings.append(f"sd-scripts at {sd_scripts} is at commit {commit}, the wrapper was built for {pinned}; "
                               f"options may differ (`make manifest` + `make test-contract` check it)")


def check_dataset(plan: Plan, caption_extension: str | None, result: Preflight) -> None:
    folder = plan.image_dir
    images = images_in(folder)
    run_hint = f"`swimlatent run {plan.recipe.path}` prepares it (collect or select, then tag)"
    if not folder.is_dir():
        result.problems.append(f"dataset {plan.recipe.dataset.name!r}: no folder {folder}; {run_hint}")
        return
    if not images:
        result.problems.append(f"dataset {plan.recipe.dataset.name!r}: no images in {folder} (sd-scripts would finish "
                               f"without a model); {run_hint}")
        return
    if caption_extension is None:
        return  # a fine-tuning metadata file holds the captions
    missing = [p for p in images if not has_caption(p, caption_extension)]
    if missing:
        result.problems.append(f"dataset {plan.recipe.dataset.name!r}: {len(missing)} of {len(images)} images in {folder} have no "
                               f"caption ({missing[0].stem}{caption_extension} is missing or empty); run "
                               f"`swimlatent tag {plan.recipe.path}`")


def check_input_model(plan: Plan, workdir: Workdir, result: Preflight) -> None:
    ref = plan.recipe.model
    if ref.kind == "hf":
        check_hub_model(ref, workdir, result)
        return
    path = plan.model_path
    if ref.kind == "stage" and not path.is_file():
        result.problems.append(f"model = {ref.text}: stage {ref.stage!r} has no verified output yet ({path}); "
                               f"train it first (`make {ref.stage}` or `swimlatent run` on its recipe)")
        return
    if not path.exists():
        result.problems.append(f"model = {ref.text}: {path} not found")
        return
    if path.is_dir() or path.suffix != ".safetensors":
        return  # a Diffusers folder or a .ckpt: sd-scripts reads it, we cannot check it cheaply
    try:
        info = read_safetensors(path)
    except NotSafetensors as error:
        result.problems.append(f"model = {ref.text}: {path}: {error}")
        return
    problem = tensor_problem(info, "sdxl_train")
    if problem:
        result.problems.append(f"model = {ref.text}: {path}: {problem}")


def check_hub_model(ref: HubRef, workdir: Workdir, result: Preflight) -> None:
    """A Hub file already fetched and verified needs nothing; else ask the Hub (quick) now, so that
    being offline is reported before anything slow, and the download's size counts in the disk check.
    The download itself comes after all checks pass."""
    from swimlatent_wrap.stages import hub

    target = workdir.hub_file(ref.repo_id, ref.filename)
    if hub.verified_sha256(target):
        return
    try:
        result.hub_remote = hub.remote_file(ref.repo_id, ref.filename)
    except hub.HubUnreachable as error:
        if target.is_file():
            result.warnings.append(f"using {target} unverified: {error.lines[0]}")
        elif isinstance(error, hub.HubGated):
            result.problems.append(f"model = {ref.text}: {error.lines[0].split(': ', 1)[1]}")
        else:
            result.problems.append(f"model = {ref.text}: not in {target}, and {error.lines[0].split(': ', 1)[1]}; fetch it once "
                                   f"while online, put the file there yourself, or set model to a local path")
    except UserError as error:
        result.problems.append(f"model = {ref.text}: {error.lines[0]}")


def check_tokenizers(args: EffectiveArgs, result: Preflight) -> None:
    """sd-scripts' --tokenizer_cache_dir (facts §6) must hold both CLIP tokenizers: else sd-scripts
    downloads them from the Hub mid-start, which stalls offline, so train refuses to start instead."""
    cache = getattr(args, "tokenizer_cache_dir", None)
    if not cache:
        return
    folder = Path(cache)
    gaps = tokenizers.missing(folder)
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")  # huggingface_hub's reading
    if gaps and not offline:
        # online: train fetches them itself once the checks pass, as it fetches an hf: model
        result.tokenizers_to_fetch = folder
        result.warnings.append(f"the CLIP tokenizers are not in {cache} yet; fetching them from the Hugging Face Hub "
                               f"once (offline: {tokenizers.fill_hint(folder)})")
    elif gaps:
        result.problems.append(f"tokenizer cache {cache} is incomplete ({'; '.join(gaps)}): sd-scripts would stop to download "
                               f"the CLIP tokenizers from the Hugging Face Hub (and hang offline); fill it once with "
                               f"{tokenizers.fill_hint(folder)}")


SDXL_UNET_PARAMETERS = 2_567_463_684  # model.diffusion_model.* of SDXL 1.0 (counted in its header)
SDXL_PARAMETERS = {"unet": SDXL_UNET_PARAMETERS, "text_encoders": 817_720_321, "vae": 83_653_863}
# Bytes of optimizer state per trained parameter, at fp32 weights (measured for Lion and Lion8bit
# in the real tier: 10 optimizer files of 2.61 GB for 2.57 G parameters with Lion8bit). States of
# the non-8-bit optimizers follow the weights' dtype (full_bf16 halves them). Unknown: AdamW's 8.
# 8-bit states carry a float32 scale per 2048-element block and the optimizers' own small tensors:
# 1.017 bytes per parameter measured for Lion8bit.
OPTIMIZER_STATE_BYTES = {"lion": 4, "lion8bit": 1.02, "pagedlion8bit": 1.02, "adamw": 8, "adamw8bit": 2.04,
                         "pagedadamw8bit": 2.04, "pagedadamw": 8, "pagedadamw32bit": 8, "sgdnesterov": 4,
                         "sgdnesterov8bit": 1.02, "adafactor": 0, "prodigy": 16, "": 8}


def parameter_counts(model: Path) -> dict[str, int]:
    """Parameters of the U-Net, the text encoders and the VAE, from a single-file checkpoint's
    header (SDXL 1.0's counts when it is not there or not readable yet)."""
    try:
        info = read_safetensors(model)
    except (OSError, NotSafetensors):
        return dict(SDXL_PARAMETERS)
    counts = {"unet": 0, "text_encoders": 0, "vae": 0}
    for name, (_, shape) in info.tensors.items():
        part = ("unet" if name.startswith("model.diffusion_model.") else
                "text_encoders" if name.startswith("conditioner.") else "vae" if name.startswith("first_stage_model.") else None)
        if part:
            counts[part] += math.prod(shape)
    return counts if counts["unet"] else dict(SDXL_PARAMETERS)


def weight_bytes(args: EffectiveArgs) -> int:
    return 2 if getattr(args, "full_bf16", False) or getattr(args, "full_fp16", False) else 4


def state_bytes(plan: Plan, args: EffectiveArgs, counts: dict[str, int]) -> int:
    """One accelerate training state as sd-scripts saves it: the trained weights in their training
    dtype, plus the optimizer's state (measured: 12.9 GB for the SDXL U-Net, fp32 + Lion8bit)."""
    if plan.recipe.script == "sdxl_train_network":
        return 1 * int(GB)
    trained = counts["unet"] + (counts["text_encoders"] if getattr(args, "train_text_encoder", False) else 0)
    optimizer = str(getattr(args, "optimizer_type", "") or "").lower().rsplit(".", 1)[-1]
    per_parameter = OPTIMIZER_STATE_BYTES.get(optimizer, 8)
    if not optimizer.endswith("8bit"):
        per_parameter = per_parameter * weight_bytes(args) / 4
    return int(trained * (weight_bytes(args) + per_parameter))


def save_bytes(plan: Plan, args: EffectiveArgs, counts: dict[str, int]) -> int:
    """One saved model: every tensor in save_precision, or (unset) in its training dtype: the
    U-Net in the weights' dtype, the frozen text encoders in the bf16/fp16 compute dtype, the VAE in fp32."""
    if plan.recipe.script == "sdxl_train_network":
        return 1 * int(GB)
    precision = getattr(args, "save_precision", None)
    if precision:
        return sum(counts.values()) * (4 if precision == "float" else 2)
    return counts["unet"] * weight_bytes(args) + counts["text_encoders"] * 2 + counts["vae"] * 4


def disk_needed(plan: Plan, args: EffectiveArgs, counts: dict[str, int], images: int) -> int:
    """What the run writes at most: the model saves kept, the training states kept, cached latents."""
    save, state = save_bytes(plan, args, counts), state_bytes(plan, args, counts)
    epochs = args.max_train_epochs or 1
    every = args.save_every_n_epochs
    # sd-scripts skips the epoch save of the last epoch (the final save is that one), and rotates
    # old saves out only after writing a new one: at most keep + 1 epoch saves exist at once.
    epoch_saves = (epochs - 1) // every if every else 0

    def kept(keep: int | None) -> int:
        return min((keep + 1) if keep else epoch_saves, epoch_saves)

    saves = 1 + kept(args.save_last_n_epochs)
    states = 0
    if args.save_state or args.save_state_on_train_end:
        states = (1 + kept(args.save_last_n_epochs_state)) if args.save_state else 1
    latents = images * 300_000 if args.cache_latents_to_disk else 0  # 4×128×128 fp32 at 1024², + npz overhead
    return saves * save + states * state + latents


def check_disk(plan: Plan, args: EffectiveArgs, workdir: Workdir, result: Preflight) -> None:
    model = plan.model_path
    present = model.is_file()
    remote_size = getattr(result.hub_remote, "size", None)
    counts = parameter_counts(model) if present else dict(SDXL_PARAMETERS)
    need = disk_needed(plan, args, counts, len(images_in(plan.image_dir)))
    if plan.recipe.model.kind == "hf" and remote_size and not (present and model.stat().st_size == remote_size):
        need += remote_size  # still to download
    where = workdir.root
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < need:
        result.problems.append(f"not enough free disk under {workdir.root}: about {need / GB:.1f} GB needed for this run's saves "
                               f"and states, {free / GB:.1f} GB free; free some, or lower save_last_n_epochs(_state)")


# Python, torch and sd-scripts' modules in the training process and accelerate's launcher.
CPU_BASELINE_BYTES = 1_500_000_000


def cpu_training_bytes(plan: Plan, args: EffectiveArgs, counts: dict[str, int]) -> int:
    """Host RAM a training run holds while it trains on the CPU, where the model, its gradients and
    the optimizer state all live in RAM: the trained weights, their gradients (about a tenth with
    fused_optimizer_groups and no accumulation), the optimizer state, and the frozen parts in the
    compute dtype. Loading the checkpoint can briefly take more (measured peaks: the README's
    real-tier table); this is the floor no run can go below."""
    if plan.recipe.script == "sdxl_train_network":
        frozen = counts["unet"] * 2 + counts["text_encoders"] * 2 + counts["vae"] * 4
        return frozen + int(GB) + CPU_BASELINE_BYTES  # the LoRA, its gradients and state: under a GB at dim 32
    trained = counts["unet"] + (counts["text_encoders"] if getattr(args, "train_text_encoder", False) else 0)
    weights = trained * weight_bytes(args)
    groups = getattr(args, "fused_optimizer_groups", None)
    accumulation = getattr(args, "gradient_accumulation_steps", 1) or 1
    gradients = weights // groups if groups and accumulation == 1 else weights
    frozen = (0 if getattr(args, "train_text_encoder", False) else counts["text_encoders"] * 2) + counts["vae"] * 4
    return state_bytes(plan, args, counts) + gradients + frozen + CPU_BASELINE_BYTES


def check_cpu_memory(plan: Plan, args: EffectiveArgs, result: Preflight) -> None:
    """On a machine without a GPU, refuse a run that cannot fit in this machine's RAM at all (the
    kernel would kill it minutes in, often while saving)."""
    model = plan.model_path
    if not model.is_file():
        return  # not there yet: the input-model check says so; counted once it is
    counts = parameter_counts(model)
    need, total = cpu_training_bytes(plan, args, counts), meminfo("MemTotal")
    if total is not None and need > total:
        result.problems.append(f"training this stage on the CPU holds about {need / GB:.1f} GB in RAM (weights, gradients and "
                               f"optimizer state of {counts['unet'] / 1e9:.2f} G U-Net parameters) and this machine has "
                               f"{total / GB:.1f} GB; the 24 GB recipes (base-24gb.toml, ft-24gb.toml: Lion8bit with "
                               f"fused_optimizer_groups) hold about 17 GB")


def preflight(plan: Plan, args: EffectiveArgs, *, workdir: Workdir, sd_scripts: Path, caption_extension: str | None,
              allow_cpu: bool) -> Preflight:
    """``args``: the run's effective sd-scripts options (stages.effective)."""
    result = Preflight()
    python = plan.argv[0]
    if allow_cpu:
        result.warnings.append("--allow-cpu: not checking for a CUDA GPU; sd-scripts itself decides where it trains")
        result.gpu = gpu_name_without_torch()
    else:
        check_cuda(python, result)
    check_sd_scripts(plan, sd_scripts, result)
    check_dataset(plan, caption_extension, result)
    check_input_model(plan, workdir, result)
    check_disk(plan, args, workdir, result)
    check_tokenizers(args, result)
    if allow_cpu and result.gpu is None:
        check_cpu_memory(plan, args, result)
    return result

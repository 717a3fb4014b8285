"""Checks before anything slow (issue item 4): a CUDA GPU for sd-scripts' Python (asked in a child:
the wrapper never imports torch), the sd-scripts checkout and its commit, the dataset, the input
model, free disk. Every problem is collected and reported at once, one line each."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from swimlatent_wrap import runner
from swimlatent_wrap.errors import UserError
from swimlatent_wrap.sdscripts.manifest import load_manifest
from swimlatent_wrap.stages import record as records
from swimlatent_wrap.stages.plan import Plan
from swimlatent_wrap.stages.verify import NotSafetensors, read_safetensors, tensor_problem
from swimlatent_wrap.workdir import Workdir

# Printed by the sd-scripts Python: whether torch sees CUDA, and the devices' names.
CUDA_PROBE = (
    "import json, torch\n"
    "ok = torch.cuda.is_available()\n"
    "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'available': ok,\n"
    "                  'devices': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if ok else []}))\n"
)
SDXL_BASE_BYTES = 6_938_078_334  # sd_xl_base_1.0.safetensors: the size assumed before it is downloaded
GB = 1e9
CPU_STEPS = "collect, tag, plan, stamp, inspect and `swimlatent train --dry-run` work without one"


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gpu: str | None = None
    torch: str | None = None
    sd_scripts_commit: str | None = None
    hub_remote: object | None = None  # hf: refs not yet verified locally: the Hub's answer about the file

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
    probe = runner.probe(["git", "-C", str(sd_scripts), "rev-parse", "HEAD"], timeout=20)
    text = probe.stdout.strip()
    return text if probe.ok and len(text) == 40 else None


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
    images = records.images_in(folder)
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
    missing = [p for p in images if not _has_caption(p, caption_extension)]
    if missing:
        result.problems.append(f"dataset {plan.recipe.dataset.name!r}: {len(missing)} of {len(images)} images in {folder} have no "
                               f"caption ({missing[0].stem}{caption_extension} is missing or empty); run "
                               f"`swimlatent tag {plan.recipe.path}`")


def _has_caption(image: Path, extension: str) -> bool:
    caption = image.with_name(image.stem + extension)
    try:
        return bool(caption.read_text(encoding="utf-8", errors="replace").strip())
    except OSError:
        return False


def check_input_model(plan: Plan, workdir: Workdir, result: Preflight) -> None:
    ref = plan.recipe.model
    if ref.kind == "hf":
        check_hub_model(plan, workdir, result)
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


def check_hub_model(plan: Plan, workdir: Workdir, result: Preflight) -> None:
    """A Hub file already fetched and verified needs nothing; else ask the Hub (quick) now, so that
    being offline is reported before anything slow, and the download's size counts in the disk check.
    The download itself comes after all checks pass."""
    from swimlatent_wrap.stages import hub

    ref = plan.recipe.model
    target = workdir.hub_file(ref.repo_id, ref.filename)
    if hub.verified_sha256(target):
        return
    try:
        result.hub_remote = hub.remote_file(ref.repo_id, ref.filename)
    except hub.HubUnreachable as error:
        if target.is_file():
            result.warnings.append(f"using {target} unverified: {error.lines[0]}")
        else:
            result.problems.append(f"model = {ref.text}: not in {target}, and {error.lines[0].split(': ', 1)[1]}; fetch it once "
                                   f"while online, put the file there yourself, or set model to a local path")
    except UserError as error:
        result.problems.append(f"model = {ref.text}: {error.lines[0]}")


# sd-scripts' --tokenizer_cache_dir layout (facts §6): filled on the first (online) run.
TOKENIZER_FOLDERS = ("openai_clip-vit-large-patch14", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k")


def check_tokenizers(args, result: Preflight) -> None:
    cache = getattr(args, "tokenizer_cache_dir", None)
    if cache and not all((Path(cache) / name).is_dir() for name in TOKENIZER_FOLDERS):
        result.warnings.append(f"sd-scripts will download the two CLIP tokenizers into {cache} on this run (network needed "
                               f"once; later runs work offline)")


def disk_needed(plan: Plan, args, model_bytes: int, images: int) -> int:
    """A rough upper estimate of what the run writes: model saves kept, training states kept
    (weights + optimizer: ~2.2× the model, e.g. ~15 GB for SDXL with Lion in bf16), cached
    latents, and the model itself when it still has to be downloaded."""
    if plan.recipe.script == "sdxl_train_network":
        save, state = 1 * GB, 1 * GB
    else:
        save, state = model_bytes, int(model_bytes * 2.2)
    epochs = args.max_train_epochs or 1
    every = args.save_every_n_epochs
    saves = 1 + (min(args.save_last_n_epochs or math.ceil(epochs / every), math.ceil(epochs / every)) if every else 0)
    states = 0
    if args.save_state or args.save_state_on_train_end:
        states = 1 + (min(args.save_last_n_epochs_state or math.ceil(epochs / every), math.ceil(epochs / every)) if every else 0)
    latents = images * 300_000 if args.cache_latents_to_disk else 0  # 4×128×128 fp32 at 1024², + npz overhead
    return saves * save + states * state + latents


def check_disk(plan: Plan, args, workdir: Workdir, result: Preflight) -> None:
    model = plan.model_path
    present = model.is_file()
    remote_size = getattr(result.hub_remote, "size", None)
    model_bytes = model.stat().st_size if present else (remote_size or SDXL_BASE_BYTES)
    need = disk_needed(plan, args, model_bytes, len(records.images_in(plan.image_dir)))
    if plan.recipe.model.kind == "hf" and remote_size and not (present and model.stat().st_size == remote_size):
        need += remote_size  # still to download
    where = workdir.root
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < need:
        result.problems.append(f"not enough free disk under {workdir.root}: about {need / GB:.1f} GB needed for this run's saves "
                               f"and states, {free / GB:.1f} GB free; free some, or lower save_last_n_epochs(_state)")


def preflight(plan: Plan, args, *, workdir: Workdir, sd_scripts: Path, caption_extension: str | None,
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
    return result

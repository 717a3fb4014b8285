"""Check a recipe's sd-scripts tables the way sd-scripts does not (facts §0).

sd-scripts loads `--config_file` TOML without checking keys, types or choices (§0.1), expands
abbreviated options (§0.3) and accepts any string as optimizer or scheduler (§0.4). Every option
the wrapper emits is checked here against the manifest: exact name, flag vs valued, type, choices;
every dataset-config key against the schema of its level. Values come back converted to the TOML
type sd-scripts needs (an int where a float belongs becomes a float, §0.17).

Problems are ``Issue(table, key, message)``; the recipe loader turns them into
``<file>: <table.key>: <message>`` lines.
"""

from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from swimlatent_wrap.sdscripts.domains import DATASET_DOMAINS, OPTION_DOMAINS
from swimlatent_wrap.sdscripts.manifest import Manifest, Option
from swimlatent_wrap.sdscripts.values import optimizer_problem, scheduler_problem
from swimlatent_wrap.secrets import SECRET_OPTIONS
from swimlatent_wrap.values import Domain, describe, not_finite


@dataclass(frozen=True)
class Issue:
    table: str
    key: str
    message: str


# Options the wrapper sets itself; a recipe setting them would fight the plan.
WRAPPER_OWNED = {
    "pretrained_model_name_or_path": "the top-level `model` key",
    "output_dir": "the run folder (runs/<stage>/<timestamp>/output)",
    "output_name": "the stage name",
    "config_file": "the plan (args.toml)",
    "output_config": "the plan",
    "dataset_config": "[dataset] and [dataset_config] (dataset.toml)",
    "train_data_dir": "[dataset]",
    "reg_data_dir": "[dataset]",
    "in_json": "[dataset] metadata_file",
    "sample_prompts": "[sample] prompts",
    "sample_sampler": "[sample] sampler",
    "sample_every_n_epochs": "[sample] every_n_epochs",
    "sample_every_n_steps": "[sample] every_n_steps",
    "sample_at_first": "[sample] at_first",
    "tokenizer_cache_dir": "the workdir (cache/tokenizers)",
    "logging_dir": "the run folder",
    "resume": "`swimlatent train --resume`",
    "console_log_file": "the run folder's log",
    "save_model_as": "swimlatent (always safetensors: outputs are verified and stamped as .safetensors)",
    "use_safetensors": "swimlatent (save_model_as = safetensors)",
}

# CLI options that sd-scripts only uses as fallbacks for the dataset config (facts §5).
DATASET_FALLBACK_RENAMES = {"train_batch_size": "batch_size", "dataset_repeats": "num_repeats"}

# Subset-level keys the wrapper writes itself from [dataset].
DATASET_OWNED = {
    "image_dir": "[dataset] (the dataset's images folder)",
    "metadata_file": "[dataset] metadata_file",
    "num_repeats": "[dataset] num_repeats",
    "is_reg": "swimlatent (regularisation subsets are not supported)",
    "conditioning_data_dir": "swimlatent (ControlNet/mask datasets are not supported)",
}

DEEPSPEED_ONLY = ("zero_stage", "offload_optimizer_device", "offload_optimizer_nvme_path", "offload_param_device",
                  "offload_param_nvme_path", "zero3_init_flag", "zero3_save_16bit_model", "fp16_master_weights_and_gradients")


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def convert_value(type_name: str, value: Any) -> Any:
    """Return ``value`` as sd-scripts needs it for ``type_name`` (an option's argparse type or a
    dataset-config validator's name from the manifest), or raise ValueError with expected vs got."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if numeric and (problem := not_finite(value)):
        raise ValueError(problem)
    if isinstance(value, list) and any((problem := not_finite(item)) for item in value):
        raise ValueError(f"item {next(n for n, item in enumerate(value, 1) if not_finite(item))}: {problem}")
    if type_name == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {describe(value)}")
        return value
    if type_name == "int":
        if not numeric or isinstance(value, float):
            raise ValueError(f"expected an integer, got {describe(value)}")
        return value
    if type_name in ("float", "number"):
        if not numeric:
            raise ValueError(f"expected a number, got {describe(value)}")
        # facts §0.17: e.g. validation_split = 0 (an int) is refused where sd-scripts wants a float
        return float(value) if type_name == "float" else value
    if type_name == "int_or_float":
        # facts §0.5: an int is a step count, a float a ratio of all steps (100.0 would mean 100 × steps).
        if not numeric:
            raise ValueError(f"expected an integer (steps) or a float below 1 (ratio of all steps), got {describe(value)}")
        if isinstance(value, float) and not 0.0 <= value < 1.0:
            raise ValueError(f"a float is a ratio of all training steps and must be below 1, got {value!r}; write an integer for a step count")
        if isinstance(value, int) and value < 0:
            raise ValueError(f"must be 0 or more, got {value}")
        return value
    if type_name == "table":
        if not isinstance(value, dict):
            raise ValueError(f"expected a table, got {describe(value)}")
        return value
    if type_name == "float_pair":
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise ValueError(f"expected an array of two numbers, got {describe(value)}")
        return [float(v) for v in value]
    if type_name == "int_or_int_pair":
        if numeric and isinstance(value, int):
            return value
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return value
        raise ValueError(f"expected an integer or an array [width, height] of integers, got {describe(value)}")
    # str, Path and anything else argparse reads as text
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {describe(value)}")
    return value


def _convert_scalar(option: Option, value: Any) -> Any:
    if option.kind == "flag" and not isinstance(value, bool):
        raise ValueError(f"is a flag: expected true or false, got {describe(value)}")
    return convert_value(option.type, value)


def _convert_option(option: Option, value: Any) -> Any:
    if option.kind == "flag":
        return _convert_scalar(option, value)
    if option.kind == "list":
        # facts §0.1: a string here is iterated character by character by sd-scripts.
        if not isinstance(value, list):
            raise ValueError(f"expected an array, got {describe(value)}")
        converted = []
        for index, item in enumerate(value):
            try:
                converted.append(_convert_scalar(option, item))
            except ValueError as error:
                raise ValueError(f"item {index + 1}: {error}") from None
        return converted
    converted = _convert_scalar(option, value)
    choices = [c for c in (option.choices or ()) if c is not None]
    if choices and converted not in choices:
        raise ValueError(f"expected one of {', '.join(repr(c) for c in choices)}, got {describe(value)}" + _suggest(str(value), [str(c) for c in choices]))
    return converted


def check_args(manifest: Manifest, script: str, args: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
    """Validate [args] for ``script``; return the converted options and every problem found."""
    options = manifest.script(script).options
    dataset_keys = manifest.dataset_levels["general"]
    issues: list[Issue] = []
    out: dict[str, Any] = {}
    for key, value in args.items():
        def bad(message: str) -> None:
            issues.append(Issue("args", key, message))

        if key in SECRET_OPTIONS:
            bad(f"secrets never go into a recipe (it is written into plans and run records); set {SECRET_OPTIONS[key]} in the environment instead")
            continue
        if key in WRAPPER_OWNED:
            bad(f"set by {WRAPPER_OWNED[key]}; remove it from [args]")
            continue
        if key in dataset_keys or key in DATASET_FALLBACK_RENAMES:
            target = DATASET_FALLBACK_RENAMES.get(key, key)
            bad(f"is a dataset setting: put `{target}` in [dataset_config] (sd-scripts uses the [args] value only as a fallback)")
            continue
        option = options.get(key)
        if option is None or option.kind == "positional":
            others = [name for name, s in manifest.scripts.items() if name != script and key in s.options and name in ("sdxl_train", "sdxl_train_network")]
            if others:
                bad(f"is an option of {others[0]}.py, not of {script}.py")
            else:
                bad(f"unknown option of sd-scripts' {script}.py" + (_suggest(key, options) or f" at commit {manifest.commit[:8]}"))
            continue
        try:
            converted = _convert_option(option, value)
        except ValueError as error:
            bad(str(error))
            continue
        if (problem := _out_of_domain(OPTION_DOMAINS.get(key), converted)) is not None:
            bad(problem)
            continue
        if key == "optimizer_type" and (problem := optimizer_problem(converted)):
            bad(problem)
            continue
        if key == "lr_scheduler" and (problem := scheduler_problem(converted, manifest.lr_schedulers)):
            bad(problem)
            continue
        if key in ("optimizer_args", "lr_scheduler_args"):
            # sd-scripts does `key, value = arg.split("=")`: exactly one "=".
            wrong = [item for item in converted if item.count("=") != 1 or not item.split("=")[0].strip()]
            if wrong:
                bad(f'each item must be "name=value" with exactly one "=", got {wrong[0]!r}')
                continue
        if key == "network_args":
            wrong = [item for item in converted if "=" not in item]
            if wrong:
                bad(f'each item must be "name=value", got {wrong[0]!r}')
                continue
        out[key] = converted
    return out, issues


def check_dataset_config(manifest: Manifest, config: dict[str, Any], finetuning: bool) -> tuple[dict[str, Any], list[Issue]]:
    """Validate [dataset_config]: sd-scripts dataset-config keys, written to dataset.toml [general]."""
    level = manifest.dataset_levels["finetuning_dataset" if finetuning else "dreambooth_dataset"]
    general = manifest.dataset_levels["general"]
    subset_only = manifest.dataset_levels["finetuning_subset" if finetuning else "dreambooth_subset"]
    issues: list[Issue] = []
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in DATASET_OWNED:
            issues.append(Issue("dataset_config", key, f"set by {DATASET_OWNED[key]}; remove it from [dataset_config]"))
            continue
        type_name = level.get(key) or (subset_only.get(key) if key == "alpha_mask" else None)
        if type_name is None:
            if key in general and finetuning:
                issues.append(Issue("dataset_config", key, "is not accepted by sd-scripts for a fine-tuning (metadata_file) dataset"))
            else:
                issues.append(Issue("dataset_config", key, "unknown sd-scripts dataset-config key" + _suggest(key, list(general) + ["alpha_mask"])))
            continue
        try:
            converted = convert_value(type_name, value)
        except ValueError as error:
            issues.append(Issue("dataset_config", key, str(error)))
            continue
        if (problem := _out_of_domain(DATASET_DOMAINS.get(key), converted)) is not None:
            issues.append(Issue("dataset_config", key, problem))
            continue
        out[key] = converted
    return out, issues


def _out_of_domain(domain: Domain | None, value: Any) -> str | None:
    """The domain's message for a number (or each number of a list) outside it; None otherwise."""
    if domain is None or isinstance(value, (str, bool, dict)):
        return None
    return domain(value)


# -- updates that round away in low-precision weights -------------------------------------------

@dataclass(frozen=True)
class StoredDtype:
    """A dtype sd-scripts stores the trained weights in, with the option that selects it."""

    flag: str  # the [args] flag: the whole model (sdxl_train) or the LoRA network (sdxl_train_network) in this dtype
    name: str
    significand_bits: int  # with the implicit leading 1

    def half_step(self, magnitude: float) -> float:
        """Half the spacing (ulp) of representable values at ``magnitude``: a smaller update rounds away."""
        return 2.0 ** (math.floor(math.log2(magnitude)) - (self.significand_bits - 1)) / 2


# sd-scripts tests full_fp16 before full_bf16 (sdxl_train.py, train_network.py).
STORED_DTYPES = (StoredDtype("full_fp16", "fp16", 11), StoredDtype("full_bf16", "bf16", 8))
# A typical weight's magnitude: most SDXL U-Net weights lie above it, so an update too small for it is
# too small for them too. 2^-9 ≈ 0.00195.
TYPICAL_WEIGHT = 2.0 ** -9


def rounded_update_issues(script: str, args: dict[str, Any], value: Callable[[str], Any], allowed: bool) -> list[Issue]:
    """Learning rates that do nothing because each step rounds away in the stored weight dtype.

    Measured with the real sd-scripts: full_bf16 (weights, gradients and optimizer state in bf16),
    Lion at lr 4e-6, 2 steps changed only 7 % of the SDXL U-Net's elements. Lion moves each weight
    by exactly lr per step; Adam-family optimizers by about lr, SGD by less, so lr bounds the
    per-step update. bf16 keeps 8 significant bits: for |w| in [2^-9, 2^-8) a step of the stored
    value is 2^-16 and half of it 2^-17 ≈ 7.6e-6, so 4e-6 rounds to nothing on every step, for every
    weight at or above 2^-9. fp16 keeps 11: half a step at 2^-9 is 2^-20 ≈ 9.5e-7. Refused: every
    learning rate that applies to trained weights (sdxl_train: the U-Net's learning_rate or block_lr,
    the text encoders' learning_rate_te1/te2 with train_text_encoder; sdxl_train_network: the LoRA weights'
    unet_lr and text_encoder_lr, learning_rate where either falls back to it) below half the step
    at TYPICAL_WEIGHT, unless the optimizer rounds stochastically. At the pinned commit only the
    fused Adafactor does (sdxl_train with fused_backward_pass, library/adafactor_fused.py
    copy_stochastic_), and only into bf16: fp16 weights are written with a plain copy_. bitsandbytes'
    8-bit optimizers quantise their state, not the weights: they write p in round-to-nearest.
    Adafactor with relative_step (sd-scripts' default) ignores learning_rate, so it is not checked.
    Accepted deliberately with [checks] allow_rounded_updates = true.
    """
    dtype = next((d for d in STORED_DTYPES if value(d.flag)), None)
    if dtype is None or allowed:
        return []
    optimizer = value("optimizer_type") or ("AdamW8bit" if value("use_8bit_adam") else "Lion" if value("use_lion_optimizer") else "AdamW")
    if optimizer.lower() == "adafactor":
        if dtype.name == "bf16" and script == "sdxl_train" and value("fused_backward_pass"):
            return []  # stochastic rounding into bf16
        options = {name.strip(): text.strip() for name, text in (item.split("=", 1) for item in value("optimizer_args") or [])}

        def literal(name: str, missing: bool) -> Any:  # sd-scripts reads each value with ast.literal_eval
            try:
                return ast.literal_eval(options[name]) if name in options else missing
            except (ValueError, SyntaxError):
                return missing

        if literal("relative_step", True) or literal("warmup_init", False):
            return []  # sd-scripts sets learning_rate = None: the step is relative to each weight's RMS

    base = value("learning_rate")
    rates: list[tuple[str, str, float]] = []  # (key, label, lr) of each set of trained weights
    if script == "sdxl_train":
        try:  # sdxl_train.py: "--block_lr", comma-separated, one learning rate per U-Net block instead of learning_rate
            blocks = [float(item) for item in value("block_lr").split(",")] if value("block_lr") else []
        except ValueError:
            blocks = []
        rates += [("block_lr", f"block_lr item {n}", lr) for n, lr in enumerate(blocks, 1)] or [("learning_rate", "learning_rate", base)]
        if value("train_text_encoder"):
            for key in ("learning_rate_te1", "learning_rate_te2"):
                own = value(key)
                rates.append((key, key, own) if own is not None else ("learning_rate", "learning_rate", base))
    else:
        if not value("network_train_text_encoder_only"):
            own = value("unet_lr")
            rates.append(("unet_lr", "unet_lr", own) if own is not None else ("learning_rate", "learning_rate", base))
        if not value("network_train_unet_only"):
            own = value("text_encoder_lr")
            if own:  # an empty list falls back to learning_rate too
                rates += [("text_encoder_lr", f"text_encoder_lr item {n}" if len(own) > 1 else "text_encoder_lr", lr)
                          for n, lr in enumerate(own, 1)]
            else:
                rates.append(("learning_rate", "learning_rate", base))

    half = dtype.half_step(TYPICAL_WEIGHT)
    weight_exponent = math.floor(math.log2(TYPICAL_WEIGHT))
    step_exponent = weight_exponent - (dtype.significand_bits - 1)
    issues: list[Issue] = []
    for key, label, lr in rates:
        if not lr or lr >= half or any(issue.key == key for issue in issues):
            continue  # 0 trains nothing (sd-scripts skips those weights); one line per key
        unset = "" if key in args else " (sd-scripts' default)"
        issues.append(Issue("args", key, (
            f"{label} = {lr:g}{unset} does nothing with {dtype.flag} and {optimizer} ({dtype.name} weights keep {dtype.significand_bits} "
            f"significant bits; no stochastic rounding): a weight at 2^{weight_exponent} ≈ {TYPICAL_WEIGHT:.5f} (most SDXL U-Net weights lie above "
            f"it) moves in steps of 2^{step_exponent} ≈ {2 * half:.2g}, and {lr:g} is {lr / (2 * half):.2f} of a step, under the half "
            f"step that round-to-nearest keeps, so each update rounds away and training leaves the model where it started; "
            f"drop {dtype.flag} (mixed_precision = \"{dtype.name}\" alone keeps fp32 master weights; to fit memory use "
            f"optimizer_type = \"Lion8bit\" and fused_optimizer_groups (sdxl_train only) with gradient_accumulation_steps = 1, "
            f"and gradient_checkpointing = true)"
            + (", or fused Adafactor (optimizer_type = \"Adafactor\", fused_backward_pass = true, gradient_accumulation_steps = 1: "
               "stochastic rounding into bf16)"
               if dtype.name == "bf16" and script == "sdxl_train" else "")
            + f", or a learning rate ≥ {half:.2g} (2^{step_exponent - 1}); to accept it deliberately, set [checks] allow_rounded_updates = true")))
    return issues


def _bucket_issues(dataset: dict[str, Any]) -> list[Issue]:
    """sd-scripts' bucket arithmetic (train_util.adjust_min_max_bucket_reso_by_steps) refused before it asserts."""
    issues: list[Issue] = []
    steps = dataset.get("bucket_reso_steps", 64)
    if steps % 32:
        issues.append(Issue("dataset_config", "bucket_reso_steps", f"must be divisible by 32 for SDXL (sd-scripts checks at start), got {steps}"))
        return issues
    low, high = dataset.get("min_bucket_reso", 256), dataset.get("max_bucket_reso", 1024)
    if low > high:
        issues.append(Issue("dataset_config", "min_bucket_reso", f"is larger than max_bucket_reso ({low} > {high})"))
        return issues
    resolution = dataset.get("resolution")
    if resolution is None:
        issues.append(Issue("dataset_config", "resolution", "must be set: sd-scripts refuses a dataset without a resolution "
                            "(e.g. resolution = 1024 for SDXL)"))
        return issues
    if not dataset.get("enable_bucket"):
        return issues
    sides = resolution if isinstance(resolution, list) else [resolution, resolution]
    # sd-scripts first rounds min down and max up to multiples of bucket_reso_steps, then asserts
    low_used, high_used = low - low % steps, high + (steps - high % steps) % steps
    if min(sides) < low_used:
        issues.append(Issue("dataset_config", "resolution", f"{min(sides)} is below min_bucket_reso ({low_used}): sd-scripts asserts "
                            "min(resolution) >= min_bucket_reso with enable_bucket; raise resolution or lower min_bucket_reso"))
    if max(sides) > high_used:
        issues.append(Issue("dataset_config", "resolution", f"{max(sides)} is above max_bucket_reso ({high_used}): sd-scripts asserts "
                            "max(resolution) <= max_bucket_reso with enable_bucket; lower resolution or raise max_bucket_reso"))
    return issues


def check_combination(manifest: Manifest, script: str, args: dict[str, Any], dataset: dict[str, Any], *,
                      finetuning: bool, prefix_tags: int, caption_files_from_tagger: bool,
                      allow_rounded_updates: bool = False) -> list[Issue]:
    """Settings that are each valid but fail together (facts §0), checked before anything starts."""
    issues: list[Issue] = []
    options = manifest.script(script).options

    def default(key: str) -> Any:
        return options[key].default if key in options else None

    def value(key: str) -> Any:
        return args.get(key, default(key))

    precision = args.get("mixed_precision")
    if precision is None:
        issues.append(Issue("args", "mixed_precision", "must be set: sd-scripts passes its own value (default 'no', i.e. fp32) "
                            "to accelerate, overriding `accelerate launch --mixed_precision`"))
    if value("full_bf16") and precision != "bf16":
        issues.append(Issue("args", "full_bf16", f"needs mixed_precision = \"bf16\" (sd-scripts asserts it), got {precision!r}"))
    if value("full_fp16") and precision != "fp16":
        issues.append(Issue("args", "full_fp16", f"needs mixed_precision = \"fp16\" (sd-scripts asserts it), got {precision!r}"))

    issues += rounded_update_issues(script, args, value, allow_rounded_updates)

    warmup = value("lr_warmup_steps") or 0
    if warmup and value("lr_scheduler") == "constant":
        issues.append(Issue("args", "lr_warmup_steps", "does nothing with lr_scheduler = \"constant\" and sd-scripts refuses it at start; "
                            "use \"constant_with_warmup\" or remove the warmup"))
    if warmup and value("lr_scheduler_type"):
        issues.append(Issue("args", "lr_warmup_steps", "must be 0 with a custom lr_scheduler_type (sd-scripts refuses it at start)"))

    if value("optimizer_type") and (value("use_8bit_adam") or value("use_lion_optimizer")):
        key = "use_8bit_adam" if value("use_8bit_adam") else "use_lion_optimizer"
        issues.append(Issue("args", key, "conflicts with optimizer_type; keep optimizer_type only"))
    if value("fused_backward_pass") and (value("optimizer_type") or "").lower() != "adafactor":
        issues.append(Issue("args", "fused_backward_pass", "works only with optimizer_type = \"Adafactor\""))

    caches_te = value("cache_text_encoder_outputs") or value("cache_text_encoder_outputs_to_disk")
    if caches_te:
        key = "cache_text_encoder_outputs" if value("cache_text_encoder_outputs") else "cache_text_encoder_outputs_to_disk"
        clash = [k for k in ("shuffle_caption", "caption_dropout_rate", "caption_tag_dropout_rate", "token_warmup_step") if dataset.get(k)]
        if clash:
            issues.append(Issue("args", key, f"cannot be combined with {', '.join(clash)} in [dataset_config]: the text encoders run once "
                                "on the unaltered caption and their cached output is reused, so captions can no longer be shuffled "
                                "or dropped (sd-scripts asserts)"))
        if script == "sdxl_train_network" and not value("network_train_unet_only"):
            issues.append(Issue("args", key, "needs network_train_unet_only = true for a LoRA (the text encoders are not run while training)"))

    caches_latents = value("cache_latents") or value("cache_latents_to_disk")
    if finetuning and script == "sdxl_train" and not caches_latents:
        issues.append(Issue("dataset", "metadata_file", "a fine-tuning (metadata) dataset with sdxl_train.py needs cache_latents or "
                            "cache_latents_to_disk = true in [args] (sd-scripts crashes building the dataset otherwise)"))
    if caches_latents:
        for key in ("color_aug", "random_crop"):
            if dataset.get(key):
                issues.append(Issue("dataset_config", key, "cannot be used with cached latents (cache_latents/cache_latents_to_disk): "
                                    "the augmentation would be baked into the cache"))

    issues += _bucket_issues(dataset)

    if "max_train_steps" in args and value("max_train_epochs") is not None:
        issues.append(Issue("args", "max_train_steps", f"is ignored: with max_train_epochs = {value('max_train_epochs')} also set "
                            "(here or in a recipe this one extends), sd-scripts trains by epochs and overrides max_train_steps; "
                            "keep one of them (an inherited key cannot be unset: set max_train_epochs instead)"))

    extension = dataset.get("caption_extension")
    if caption_files_from_tagger and extension is not None and extension != ".txt":
        issues.append(Issue("dataset_config", "caption_extension", f"`swimlatent tag` writes .txt captions; {extension!r} would train "
                            "every image on an empty caption"))

    keep = dataset.get("keep_tokens")
    if keep is not None and prefix_tags and dataset.get("shuffle_caption") and keep < prefix_tags:
        issues.append(Issue("dataset_config", "keep_tokens", f"is {keep} but [captions] prefix has {prefix_tags} tags: shuffle_caption "
                            "would move prefix tags away from the head"))

    if not value("deepspeed"):
        for key in DEEPSPEED_ONLY:
            if key in args:
                issues.append(Issue("args", key, "has no effect without deepspeed = true"))

    if script == "sdxl_train_network" and not args.get("network_module"):
        issues.append(Issue("args", "network_module", "must be set for sdxl_train_network.py (e.g. \"networks.lora\")"))
    return issues

"""The rule that refuses learning rates whose every step rounds away in bf16/fp16 weights
(full_bf16, full_fp16), through load_recipe and the real `swimlatent validate`."""

from __future__ import annotations

from pathlib import Path

import pytest

from swimlatent_wrap.recipe import RecipeError, load_recipe
from swimlatent_wrap.sdscripts.checks import STORED_DTYPES, TYPICAL_WEIGHT
from tests.helpers import run_cli

LION_BF16 = 'mixed_precision = "bf16"\nfull_bf16 = true\noptimizer_type = "Lion"\n'
LION_FP16 = 'mixed_precision = "fp16"\nfull_fp16 = true\noptimizer_type = "Lion"\n'
ADAFACTOR_ABSOLUTE = ('optimizer_type = "Adafactor"\ngradient_accumulation_steps = 1\n'
                      'optimizer_args = ["relative_step=False", "scale_parameter=False", "warmup_init=False"]\n')


@pytest.fixture
def recipe(write_recipe, tmp_path):
    """A self-contained recipe (own folder dataset) with ``args`` as its [args] body."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)

    def make(args: str, script: str = "sdxl_train", extra: str = "", name: str = "t") -> Path:
        if script == "sdxl_train_network":
            args = 'network_module = "networks.lora"\n' + args
        return write_recipe(f"{name}.toml", (
            f'name = "{name}"\nscript = "{script}"\nmodel = "hf:a/b/c.safetensors"\n'
            f'[dataset]\nname = "d"\nsource = "folder"\npath = "{images}"\n'
            f"[dataset_config]\nresolution = 1024\n[args]\n{args}\n{extra}"))

    return make


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    return {p.key: p.message for p in caught.value.problems}


def accepted(path: Path) -> None:
    load_recipe(path)  # raises RecipeError with every problem otherwise


def test_half_step_comes_from_the_significand_bits():
    halves = {d.name: d.half_step(TYPICAL_WEIGHT) for d in STORED_DTYPES}
    assert TYPICAL_WEIGHT == 2.0 ** -9
    assert halves == {"bf16": 2.0 ** -17, "fp16": 2.0 ** -20}  # ≈ 7.6e-6 and ≈ 9.5e-7


@pytest.mark.parametrize("lr", ["4e-6", "7.5e-6"])
def test_bf16_lion_below_the_threshold_is_refused(recipe, lr):
    found = problems(recipe(LION_BF16 + f"learning_rate = {lr}\n"))
    assert list(found) == ["args.learning_rate"]
    message = found["args.learning_rate"]
    assert f"learning_rate = {float(lr):g} does nothing with full_bf16 and Lion" in message
    assert "bf16 weights keep 8 significant bits" in message
    assert "steps of 2^-16 ≈ 1.5e-05" in message and f"is {float(lr) / 2 ** -16:.2f} of a step" in message
    assert "drop full_bf16" in message and 'optimizer_type = "Lion8bit"' in message and "fused_optimizer_groups" in message
    assert "gradient_accumulation_steps = 1" in message and "gradient_checkpointing" in message
    assert "fused Adafactor" in message and "≥ 7.6e-06" in message
    assert "[checks] allow_rounded_updates = true" in message
    assert "\n" not in message


@pytest.mark.parametrize("lr", ["7.7e-6", "1e-5", "5e-5"])
def test_bf16_lion_at_or_above_the_threshold_is_accepted(recipe, lr):
    accepted(recipe(LION_BF16 + f"learning_rate = {lr}\n"))


def test_exactly_half_a_step_is_accepted(recipe):
    accepted(recipe(LION_BF16 + f"learning_rate = {2.0 ** -17!r}\n"))


@pytest.mark.parametrize("optimizer", ['optimizer_type = "AdamW"', 'optimizer_type = "AdamW8bit"', 'optimizer_type = "Lion8bit"',
                                       'optimizer_type = "SGDNesterov"', "use_8bit_adam = true", ""])
def test_other_optimizers_without_stochastic_rounding_are_refused(recipe, optimizer):
    # bitsandbytes' 8-bit optimizers quantise their state, not the weights: no exception for them
    found = problems(recipe(f'mixed_precision = "bf16"\nfull_bf16 = true\n{optimizer}\nlearning_rate = 4e-6\n'))
    name = {"": "AdamW", "use_8bit_adam = true": "AdamW8bit"}.get(optimizer, optimizer.split('"')[1] if '"' in optimizer else "")
    assert f"does nothing with full_bf16 and {name} " in found["args.learning_rate"]


def test_adamw_above_the_threshold_is_accepted(recipe):
    accepted(recipe('mixed_precision = "bf16"\nfull_bf16 = true\noptimizer_type = "AdamW"\nlearning_rate = 1e-5\n'))


def test_fp16_threshold(recipe):
    message = problems(recipe(LION_FP16 + "learning_rate = 5e-7\n"))["args.learning_rate"]
    assert "does nothing with full_fp16 and Lion (fp16 weights keep 11 significant bits" in message
    assert "steps of 2^-19 ≈ 1.9e-06" in message and "is 0.26 of a step" in message and "≥ 9.5e-07 (2^-20)" in message
    assert "drop full_fp16" in message and 'mixed_precision = "fp16" alone keeps fp32 master weights' in message
    assert "fused Adafactor" not in message  # it rounds stochastically into bf16 only
    accepted(recipe(LION_FP16 + "learning_rate = 1e-6\n", name="ok"))
    accepted(recipe(LION_FP16 + "learning_rate = 4e-6\n", name="seed"))  # fp16's finer steps keep 4e-6
    found = problems(recipe('mixed_precision = "fp16"\nfull_fp16 = true\noptimizer_type = "AdamW"\nlearning_rate = 5e-7\n', name="adam"))
    assert "full_fp16 and AdamW" in found["args.learning_rate"]


def test_plain_bf16_mixed_precision_keeps_fp32_weights(recipe):
    accepted(recipe('mixed_precision = "bf16"\noptimizer_type = "Lion"\nlearning_rate = 4e-6\n'))
    accepted(recipe('mixed_precision = "bf16"\nfull_bf16 = false\noptimizer_type = "Lion"\nlearning_rate = 4e-6\n', name="off"))
    accepted(recipe('mixed_precision = "fp16"\noptimizer_type = "Lion"\nlearning_rate = 1e-7\n', name="fp16"))


def test_fused_adafactor_rounds_stochastically_into_bf16(recipe):
    fused = 'mixed_precision = "bf16"\nfull_bf16 = true\nfused_backward_pass = true\nlearning_rate = 4e-6\n' + ADAFACTOR_ABSOLUTE
    accepted(recipe(fused))
    # the same Adafactor without the fused path writes bf16 weights round-to-nearest
    found = problems(recipe(fused.replace("fused_backward_pass = true\n", ""), name="unfused"))
    assert "full_bf16 and Adafactor" in found["args.learning_rate"]
    # into fp16 the fused Adafactor copies plainly
    fp16 = fused.replace('"bf16"', '"fp16"').replace("full_bf16", "full_fp16").replace("4e-6", "5e-7")
    assert "full_fp16 and Adafactor" in problems(recipe(fp16, name="fp16"))["args.learning_rate"]
    # train_network.py has no fused backward pass: the LoRA's Adafactor rounds to nearest
    found = problems(recipe(fused, script="sdxl_train_network", name="lora"))
    assert "full_bf16 and Adafactor" in found["args.learning_rate"]


def test_relative_step_adafactor_does_not_use_learning_rate(recipe):
    # sd-scripts' default relative_step = True sets learning_rate = None: steps scale with each weight
    accepted(recipe('mixed_precision = "bf16"\nfull_bf16 = true\noptimizer_type = "Adafactor"\nlearning_rate = 4e-6\n'))


def test_lora_unet_lr_and_text_encoder_lr(recipe):
    lora = 'mixed_precision = "bf16"\nfull_bf16 = true\noptimizer_type = "Lion"\n'
    found = problems(recipe(lora + "learning_rate = 1e-4\nunet_lr = 4e-6\n", script="sdxl_train_network"))
    assert list(found) == ["args.unet_lr"] and "unet_lr = 4e-06 does nothing with full_bf16" in found["args.unet_lr"]
    assert "fused Adafactor" not in found["args.unet_lr"]  # not offered where sd-scripts has no fused path
    found = problems(recipe(lora + "learning_rate = 1e-4\ntext_encoder_lr = [1e-4, 4e-6]\n", script="sdxl_train_network", name="te"))
    assert list(found) == ["args.text_encoder_lr"] and "text_encoder_lr item 2 = 4e-06 does nothing" in found["args.text_encoder_lr"]
    found = problems(recipe(lora + "learning_rate = 1e-4\ntext_encoder_lr = [2e-6]\n", script="sdxl_train_network", name="te1"))
    assert "text_encoder_lr = 2e-06 does nothing" in found["args.text_encoder_lr"]
    # learning_rate applies only where unet_lr or text_encoder_lr falls back to it
    accepted(recipe(lora + "learning_rate = 4e-6\nunet_lr = 1e-4\ntext_encoder_lr = [1e-4, 5e-5]\n", script="sdxl_train_network", name="own"))
    found = problems(recipe(lora + "learning_rate = 4e-6\nunet_lr = 1e-4\n", script="sdxl_train_network", name="fallback"))
    assert list(found) == ["args.learning_rate"]
    # text-encoder LoRA weights not trained, or trained with lr 0: their rates do not apply
    accepted(recipe(lora + "learning_rate = 1e-4\ntext_encoder_lr = [4e-6]\nnetwork_train_unet_only = true\n",
                    script="sdxl_train_network", name="unet_only"))
    accepted(recipe(lora + "learning_rate = 1e-4\ntext_encoder_lr = [0.0]\n", script="sdxl_train_network", name="zero"))
    accepted(recipe(lora + "learning_rate = 4e-6\nunet_lr = 1e-4\nnetwork_train_unet_only = true\n", script="sdxl_train_network", name="u"))


def test_fine_tune_text_encoder_and_block_rates(recipe):
    base = LION_BF16 + "learning_rate = 1e-5\n"
    found = problems(recipe(base + "train_text_encoder = true\nlearning_rate_te1 = 4e-6\nlearning_rate_te2 = 0.0\n"))
    assert list(found) == ["args.learning_rate_te1"]
    accepted(recipe(base + "learning_rate_te1 = 4e-6\n", name="frozen"))  # text encoders not trained
    blocks = ",".join(["1e-5"] * 2 + ["4e-6"] + ["1e-5"] * 20)
    found = problems(recipe(LION_BF16 + f'learning_rate = 1e-5\nblock_lr = "{blocks}"\n', name="blocks"))
    assert list(found) == ["args.block_lr"] and "block_lr item 3 = 4e-06" in found["args.block_lr"]
    accepted(recipe(LION_BF16 + f'learning_rate = 4e-6\nblock_lr = "{",".join(["1e-5"] * 23)}"\n', name="own"))
    found = problems(recipe(LION_BF16, name="default"))  # learning_rate unset: sd-scripts' 2e-6
    assert "learning_rate = 2e-06 (sd-scripts' default) does nothing" in found["args.learning_rate"]


def test_checks_allow_rounded_updates_accepts_it(recipe):
    accepted(recipe(LION_BF16 + "learning_rate = 4e-6\n", extra="[checks]\nallow_rounded_updates = true\n"))
    accepted(recipe(LION_FP16 + "learning_rate = 1e-7\n", extra="[checks]\nallow_rounded_updates = true\n", name="fp16"))
    found = problems(recipe(LION_BF16 + "learning_rate = 4e-6\n", extra="[checks]\nallow_rounded_updates = false\n", name="no"))
    assert list(found) == ["args.learning_rate"]
    found = problems(recipe(LION_BF16 + "learning_rate = 1e-5\n", extra='[checks]\nallow_rounded_updates = "yes"\nallow_rounded = true\n',
                            name="typo"))
    assert found["checks.allow_rounded_updates"] == "expected true or false, got a string ('yes')"
    assert "did you mean 'allow_rounded_updates'?" in found["checks.allow_rounded"]


def test_validate_cli_prints_one_line_per_problem(recipe):
    path = recipe('mixed_precision = "bf16"\nfull_bf16 = true\noptimizer_type = "Lion"\nlearning_rate = 1e-4\n'
                  "unet_lr = 4e-6\ntext_encoder_lr = [3e-6, 1e-4]\nsave_every_n_epoch = 1\n", script="sdxl_train_network")
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    by_key = {line.split(": ", 2)[1]: line for line in lines}
    assert set(by_key) == {"args.unet_lr", "args.text_encoder_lr", "args.save_every_n_epoch"}
    assert all(line.startswith(f"{path}: args.") for line in lines)
    assert "unet_lr = 4e-06 does nothing with full_bf16 and Lion" in by_key["args.unet_lr"]
    assert "text_encoder_lr item 1 = 3e-06" in by_key["args.text_encoder_lr"]
    fixed = recipe('mixed_precision = "bf16"\nfull_bf16 = true\noptimizer_type = "Lion"\nlearning_rate = 4e-6\n',
                   extra="[checks]\nallow_rounded_updates = true\n", name="ok")
    result = run_cli("validate", str(fixed))
    assert result.returncode == 0, result.stderr

"""The ranges of sd-scripts' numeric options and dataset-config keys, beside the manifest.

sd-scripts' parser checks types only: `learning_rate = -1`, `gradient_accumulation_steps = 0` or
`max_train_epochs = -3` start a run that fails or trains nothing. Each key commonly set is given
its domain here, once; `checks.check_args` and `checks.check_dataset_config` enforce it (and refuse
NaN and the infinities for every number, listed here or not). The manifest test checks that
every key below is a real option or dataset key at the pinned commit.
"""

from __future__ import annotations

from swimlatent_wrap.values import AT_LEAST_1, NON_NEGATIVE, POSITIVE, PROBABILITY, Domain

# [args]: sd-scripts options, by their own names.
OPTION_DOMAINS: dict[str, Domain] = {
    # learning rates: the trained weights' rate is > 0; a per-part rate of 0 means "do not train it"
    "learning_rate": POSITIVE,
    "unet_lr": NON_NEGATIVE,
    "text_encoder_lr": NON_NEGATIVE,
    "learning_rate_te1": NON_NEGATIVE,
    "learning_rate_te2": NON_NEGATIVE,
    "lr_scheduler_num_cycles": AT_LEAST_1,
    "lr_scheduler_power": POSITIVE,
    "lr_scheduler_min_lr_ratio": PROBABILITY,
    # length of training
    "max_train_steps": AT_LEAST_1,
    "max_train_epochs": AT_LEAST_1,
    "gradient_accumulation_steps": AT_LEAST_1,
    "fused_optimizer_groups": AT_LEAST_1,
    # saving
    "save_every_n_epochs": AT_LEAST_1,
    "save_every_n_steps": AT_LEAST_1,
    "save_last_n_epochs": AT_LEAST_1,
    "save_last_n_epochs_state": AT_LEAST_1,
    "save_last_n_steps": AT_LEAST_1,
    "save_last_n_steps_state": AT_LEAST_1,
    # data loading and text
    "max_data_loader_n_workers": NON_NEGATIVE,
    "vae_batch_size": AT_LEAST_1,
    "clip_skip": AT_LEAST_1,
    "seed": Domain(0, 2**32 - 1, why="a seed for torch and numpy"),
    # noise and loss
    "min_snr_gamma": POSITIVE,
    "noise_offset": NON_NEGATIVE,
    "multires_noise_iterations": AT_LEAST_1,
    "multires_noise_discount": PROBABILITY,
    "ip_noise_gamma": NON_NEGATIVE,
    "huber_c": POSITIVE,
    "min_timestep": Domain(0, 999, why="of SDXL's 1000 noise timesteps"),
    "max_timestep": Domain(1, 1000, why="of SDXL's 1000 noise timesteps"),
    "max_grad_norm": NON_NEGATIVE,
    "scale_weight_norms": POSITIVE,
    # LoRA
    "network_dim": AT_LEAST_1,
    "network_alpha": POSITIVE,
    "network_dropout": PROBABILITY,
    # evaluation
    "validate_every_n_steps": AT_LEAST_1,
    "validate_every_n_epochs": AT_LEAST_1,
    "max_validation_steps": AT_LEAST_1,
}

# [dataset_config]: sd-scripts dataset-config keys (dataset.toml [general]).
DATASET_DOMAINS: dict[str, Domain] = {
    "batch_size": AT_LEAST_1,
    "num_repeats": AT_LEAST_1,
    "keep_tokens": NON_NEGATIVE,
    "caption_dropout_rate": PROBABILITY,
    "caption_tag_dropout_rate": PROBABILITY,
    "caption_dropout_every_n_epochs": NON_NEGATIVE,
    "token_warmup_min": AT_LEAST_1,
    "token_warmup_step": NON_NEGATIVE,
    "resolution": Domain(64, 8192, why="pixels per side"),
    "min_bucket_reso": Domain(64, 8192, why="pixels per side"),
    "max_bucket_reso": Domain(64, 8192, why="pixels per side"),
    "bucket_reso_steps": Domain(32, 1024, why="pixels"),
    "network_multiplier": Domain(),
    "validation_split": Domain(0, 1, high_open=True),
    "validation_seed": Domain(0, 2**32 - 1),
}

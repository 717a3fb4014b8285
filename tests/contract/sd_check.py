"""Runs INSIDE sd-scripts' own Python environment (contract tier), never in the wrapper's.

Given a plan folder written by `swimlatent plan`, put it through sd-scripts' own code at the
checkout given: the script's argument parser, `read_config_from_file` (--config_file), the
argument verifiers the script calls before loading models, the dataset-config validator, the
blueprint and dataset builder (on the plan's real image folder), the prompt-file reader, the
optimizer and scheduler factories, and accelerate's own launch parser. Prints one JSON report.

    python sd_check.py SD_SCRIPTS_DIR PLAN_DIR
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def main() -> int:
    checkout, plan_dir = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    sys.path.insert(0, str(checkout))
    argv = json.loads((plan_dir / "argv.json").read_text())
    script_index = next(i for i, a in enumerate(argv) if a.endswith(".py"))
    launcher, script_path, script_args = argv[:script_index], argv[script_index], argv[script_index + 1:]
    report: dict = {"script": Path(script_path).name}

    # accelerate's own parser accepts the launcher part
    from accelerate.commands.launch import launch_command_parser

    launch_args = launch_command_parser().parse_args(launcher[3:] + [script_path] + script_args)
    report["launch"] = {"num_processes": launch_args.num_processes, "num_machines": launch_args.num_machines,
                        "mixed_precision": launch_args.mixed_precision, "multi_gpu": launch_args.multi_gpu}

    module = importlib.import_module(Path(script_path).stem)
    parser = module.setup_parser()
    from library import config_util, sdxl_train_util, strategy_base, strategy_sd, train_util
    from library import deepspeed_utils

    # read_config_from_file parses sys.argv again (into the config namespace): make it the script's.
    sys.argv = [script_path] + script_args
    args = parser.parse_args(script_args)
    args = train_util.read_config_from_file(args, parser)
    known = {action.dest for action in parser._actions}
    import toml

    config = toml.load(plan_dir / "args.toml")
    report["unknown_config_keys"] = sorted(k for k in config if k not in known)

    train_util.verify_training_args(args)
    train_util.prepare_dataset_args(args, True)
    sdxl_train_util.verify_sdxl_training_args(args)
    deepspeed_utils.prepare_deepspeed_args(args)

    effective = {}
    for key, value in sorted(vars(args).items()):
        effective[key] = value if isinstance(value, (str, int, float, bool, type(None), list)) else str(value)
    report["args"] = effective

    # the dataset config, as the script loads and validates it
    user_config = config_util.load_user_config(str(args.dataset_config))
    sanitizer = config_util.ConfigSanitizer(True, True, args.masked_loss, True)
    sanitizer.sanitize_user_config(user_config)
    report["dataset_toml"] = user_config
    if args.cache_latents or args.cache_latents_to_disk:
        strategy_base.LatentsCachingStrategy.set_strategy(
            strategy_sd.SdSdxlLatentsCachingStrategy(False, args.cache_latents_to_disk, args.vae_batch_size, args.skip_cache_check))
    blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
    group, _ = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
    group.verify_bucket_reso_steps(32)
    captions = {}
    for dataset in group.datasets:
        for info in dataset.image_data.values():
            captions[Path(info.absolute_path).name] = info.caption
        report["dataset"] = {"batch_size": dataset.batch_size, "width": dataset.width, "height": dataset.height,
                             "num_train_images": dataset.num_train_images,
                             "subsets": [{"image_dir": s.image_dir, "num_repeats": s.num_repeats, "keep_tokens": s.keep_tokens,
                                          "shuffle_caption": s.shuffle_caption, "caption_dropout_rate": s.caption_dropout_rate,
                                          "caption_extension": getattr(s, "caption_extension", None)} for s in dataset.subsets]}
    report["captions"] = captions
    report["text_encoder_output_cacheable"] = group.is_text_encoder_output_cacheable()

    if args.sample_prompts:
        report["prompts"] = train_util.load_prompts(args.sample_prompts)

    # optimizer and scheduler built by sd-scripts' own factories on a dummy parameter
    import torch

    args.max_train_steps = args.max_train_steps or 100
    name, optimizer_args, optimizer = train_util.get_optimizer(args, [torch.nn.Parameter(torch.zeros(4))])
    report["optimizer"] = type(optimizer).__module__ + "." + type(optimizer).__name__
    scheduler = train_util.get_scheduler_fix(args, optimizer, 1)
    report["scheduler"] = type(scheduler).__name__
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The training launch argv: `accelerate launch` (its flags from [launch]) + the script + its own options.

Both halves go through the one command-line builder (sdscripts.command): the script's options are
checked against the manifest, accelerate's against ACCELERATE_OPTIONS below. Pure functions of their
inputs, so the same recipe and paths always give the same list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swimlatent_wrap.sdscripts.command import options_argv, script_argv
from swimlatent_wrap.sdscripts.manifest import Manifest, Option

ACCELERATE_MODULE = "accelerate.commands.launch"


def _accelerate_option(name: str, kind: str, type_name: str) -> Option:
    return Option(name=name, kind=kind, type=type_name, default=None, choices=None)


# The options of `accelerate launch` the wrapper writes (accelerate's parser, so not in the manifest).
ACCELERATE_OPTIONS = {option.name: option for option in (
    _accelerate_option("num_processes", "valued", "int"),
    _accelerate_option("num_machines", "valued", "int"),
    _accelerate_option("mixed_precision", "valued", "str"),
    _accelerate_option("dynamo_backend", "valued", "str"),
    _accelerate_option("num_cpu_threads_per_process", "valued", "int"),
    _accelerate_option("multi_gpu", "flag", "bool"),
    _accelerate_option("machine_rank", "valued", "int"),
    _accelerate_option("main_process_ip", "valued", "str"),
    _accelerate_option("main_process_port", "valued", "int"),
    _accelerate_option("gpu_ids", "valued", "str"),
)}


def accelerate_argv(python: str, launch: Any, mixed_precision: str) -> list[str]:
    """`python -m accelerate.commands.launch …` for one GPU, several GPUs or several machines.

    accelerate's own `--mixed_precision` is set to the script's value for consistency, but it is the
    script's `--mixed_precision` that decides (facts §0.6), and that is always passed too.
    """
    processes, machines = launch.num_processes, launch.num_machines  # their fit is checked by `validate` ([launch])
    options: dict[str, Any] = {
        "num_processes": processes, "num_machines": machines, "mixed_precision": mixed_precision,
        "dynamo_backend": "no", "num_cpu_threads_per_process": launch.num_cpu_threads_per_process,
        "multi_gpu": processes > 1,
    }
    if machines > 1:
        options.update(machine_rank=launch.machine_rank, main_process_ip=launch.main_process_ip,
                       main_process_port=launch.main_process_port)
    if launch.gpu_ids:
        options["gpu_ids"] = launch.gpu_ids
    return [python, "-m", ACCELERATE_MODULE, *options_argv("accelerate launch", ACCELERATE_OPTIONS, options)]


def training_argv(manifest: Manifest, script: str, sd_scripts: Path, config_file: Path, mixed_precision: str) -> list[str]:
    """The training script and its command line: everything else is in the --config_file TOML, but
    --mixed_precision is given here too (facts §0.6)."""
    return script_argv(manifest, script, sd_scripts=sd_scripts,
                       options={"config_file": config_file, "mixed_precision": mixed_precision})

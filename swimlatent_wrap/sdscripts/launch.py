"""The launch argv: `accelerate launch` (its flags from [launch]) + the script + its own options.

A pure function of its inputs, so the same recipe and paths always give the same list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swimlatent_wrap.errors import UserError


def accelerate_argv(python: str, launch: Any, mixed_precision: str) -> list[str]:
    """`python -m accelerate.commands.launch …` for one GPU, several GPUs or several machines.

    accelerate's own `--mixed_precision` is set to the script's value for consistency, but it is the
    script's `--mixed_precision` that decides (facts §0.6), and that is always passed too.
    """
    processes, machines = launch.num_processes, launch.num_machines
    if machines > 1 and not launch.main_process_ip:
        raise UserError("[launch] main_process_ip is required when num_machines > 1 (the rank-0 machine's address)")
    if launch.machine_rank >= machines:
        raise UserError(f"[launch] machine_rank {launch.machine_rank} must be below num_machines ({machines})")
    if processes < machines:
        raise UserError(f"[launch] num_processes ({processes}) counts processes on all machines; it must be at least num_machines ({machines})")
    argv = [python, "-m", "accelerate.commands.launch",
            "--num_processes", str(processes),
            "--num_machines", str(machines),
            "--mixed_precision", mixed_precision,
            "--dynamo_backend", "no",
            "--num_cpu_threads_per_process", str(launch.num_cpu_threads_per_process)]
    if processes > 1:
        argv.append("--multi_gpu")
    if machines > 1:
        argv += ["--machine_rank", str(launch.machine_rank),
                 "--main_process_ip", launch.main_process_ip,
                 "--main_process_port", str(launch.main_process_port)]
    if launch.gpu_ids:
        argv += ["--gpu_ids", launch.gpu_ids]
    return argv


def script_argv(sd_scripts: Path, script_file: str, config_file: Path, mixed_precision: str) -> list[str]:
    """The script and its command line: everything else is in the --config_file TOML."""
    return [str(sd_scripts / script_file), "--config_file", str(config_file), "--mixed_precision", mixed_precision]

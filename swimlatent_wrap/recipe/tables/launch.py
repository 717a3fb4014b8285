"""[launch]: how accelerate starts the training script (one GPU, several, several machines)."""

import re
from typing import Any

from swimlatent_wrap.recipe.schema import INT, STR, Field, Table
from swimlatent_wrap.values import AT_LEAST_1, NON_NEGATIVE, Domain

_GPU_IDS = re.compile(r"^\d+(,\d+)*$")


def _gpu_ids(value: str) -> str | None:
    return None if not value or _GPU_IDS.match(value) else f'expected GPU numbers separated by commas, e.g. "0,1", got {value!r}'


def _check(values: dict[str, Any]) -> list[tuple[str, str]]:
    """The machines and processes fit together (accelerate would fail or hang at start otherwise)."""
    processes, machines, rank = values.get("num_processes"), values.get("num_machines"), values.get("machine_rank")
    if not (isinstance(processes, int) and isinstance(machines, int) and isinstance(rank, int)):
        return []  # a bad value is already reported
    problems = []
    if machines > 1 and not values.get("main_process_ip"):
        problems.append(("main_process_ip", f"is required when num_machines > 1 (it is {machines}): the rank-0 machine's address"))
    if rank >= machines:
        problems.append(("machine_rank", f"{rank} must be below num_machines ({machines})"))
    if processes < machines:
        problems.append(("num_processes", f"is {processes}, but it counts the processes of all machines: at least num_machines ({machines})"))
    return problems


TABLE = Table(
    name="launch",
    help="accelerate launch settings. DeepSpeed is configured with sd-scripts' own options in [args].",
    fields=[
        Field("python", STR, "", "the Python that has sd-scripts' requirements (default: the one running swimlatent)"),
        Field("num_processes", INT, 1, "processes in total, across all machines (one per GPU)", check=AT_LEAST_1),
        Field("num_machines", INT, 1, "machines taking part", check=AT_LEAST_1),
        Field("machine_rank", INT, 0, "this machine's rank (0 = the main machine)", check=NON_NEGATIVE),
        Field("main_process_ip", STR, "", "address of the rank-0 machine (several machines)"),
        Field("main_process_port", INT, 29500, "port of the rank-0 machine (several machines)", check=Domain(1, 65535)),
        Field("gpu_ids", STR, "", 'GPUs to use on this machine, e.g. "0,1" (default: all)', check=_gpu_ids),
        Field("num_cpu_threads_per_process", INT, 1, "CPU threads per process", check=AT_LEAST_1),
    ],
    check=_check,
)

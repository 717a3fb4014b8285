"""[launch]: how accelerate starts the training script (one GPU, several, several machines)."""

from swimlatent_wrap.recipe.schema import INT, STR, Field, Table


def _at_least(n: int):
    return lambda v: None if v >= n else f"must be {n} or more, got {v}"


TABLE = Table(
    name="launch",
    help="accelerate launch settings. DeepSpeed is configured with sd-scripts' own options in [args].",
    fields=[
        Field("python", STR, "", "the Python that has sd-scripts' requirements (default: the one running swimlatent)"),
        Field("num_processes", INT, 1, "processes in total, across all machines (one per GPU)", check=_at_least(1)),
        Field("num_machines", INT, 1, "machines taking part", check=_at_least(1)),
        Field("machine_rank", INT, 0, "this machine's rank (0 = the main machine)", check=_at_least(0)),
        Field("main_process_ip", STR, "", "address of the rank-0 machine (several machines)"),
        Field("main_process_port", INT, 29500, "port of the rank-0 machine (several machines)", check=_at_least(1)),
        Field("gpu_ids", STR, "", 'GPUs to use on this machine, e.g. "0,1" (default: all)'),
        Field("num_cpu_threads_per_process", INT, 1, "CPU threads per process", check=_at_least(1)),
    ],
)

"""What an sd-scripts process needs to run on a CPU machine like CI's (2 cores, 24 GB, the CPU
torch wheel): the one declaration of those measures, used by train (`--allow-cpu`), the sweep on
CPU, the merge (which always runs in host RAM, facts §3) and `smoke`.

Environment only — no sd-scripts file is changed and no option of the recipe:
- ``cpu_env/`` first on PYTHONPATH: its sitecustomize.py makes torchvision (a CUDA build on PyPI)
  importable beside the CPU torch, and saves safetensors files one tensor at a time (see there);
- ``MALLOC_MMAP_THRESHOLD_``: glibc hands blocks of 128 KiB and more back to the system when they
  are freed, so the peak of a 10 GB model that is loaded, converted and saved is not kept as
  fragmented heap for the rest of the run.

The option a CPU run needs in the recipe itself (no DataLoader workers) is in `CPU_ARGS`, applied
by `smoke` and written into the real tier's recipes.
"""

from __future__ import annotations

import os
from pathlib import Path

SITE_DIR = Path(__file__).with_name("cpu_env")

# sd-scripts options a CPU run needs (measured in the real tier on a 24 GB machine): forked
# DataLoader workers copy the whole parent process as they touch it. Not disable_mmap_load_safetensors:
# it reads the whole file into memory and then builds the tensors from those bytes, two copies at
# once (a 12 GB fp32 checkpoint went past 21 GiB while loading); with the default mmap the file's
# pages stay resident only as page cache, which the kernel drops when memory is needed.
CPU_ARGS = {
    "max_data_loader_n_workers": 0,
    "persistent_data_loader_workers": False,
}


def child_env() -> dict[str, str]:
    """Variables to add to an sd-scripts child's environment (PYTHONPATH to be prepended)."""
    return {"PYTHONPATH": str(SITE_DIR), "MALLOC_MMAP_THRESHOLD_": "131072"}


def environment(base: dict[str, str]) -> dict[str, str]:
    """``base`` (e.g. os.environ) with `child_env()` added, PYTHONPATH prepended to what was there."""
    env = dict(base)
    for key, value in child_env().items():
        env[key] = value + (os.pathsep + env[key] if key == "PYTHONPATH" and env.get(key) else "")
    return env

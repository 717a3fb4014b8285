#!/usr/bin/env python3
"""Stamping speed and memory: `swimlatent stamp` (header in place; copy with --out) against
`sha256sum` of the same file (the floor: stamping must hash every tensor byte) and against loading
and re-saving the file with the safetensors library's numpy API.

A generated .safetensors file (F16 tensors of 64 MiB, random bytes, header with room to spare) of
--size-gb GiB in --dir. Each command runs --runs times, interleaved, in its own child process;
medians of wall time are shown as ratios to sha256sum, with each child's peak RSS (wait4). The file
is read once first, so every command sees the same (warm) page cache.

coreutils' sha256sum is not always the fastest SHA-256 on the machine: builds without OpenSSL use a
generic C implementation that ignores the CPU's SHA extensions, while Python's hashlib uses
OpenSSL's. So `openssl dgst -sha256` (when installed) is timed too, with a second ratio column
against it: that is the floor the stamp's own hashing can reach.

    python bench/bench_stamp.py [--size-gb 1] [--runs 3] [--dir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TENSOR_BYTES = 64 * 1024 * 1024


def generate(path: Path, size: int) -> None:
    """A valid safetensors file of about ``size`` bytes, written in 64 MiB blocks (constant memory)."""
    import numpy as np

    count = max(1, size // TENSOR_BYTES)
    header = {"__metadata__": {"ss_base_model_version": "sdxl_base_v1-0"}}
    for index in range(count):
        header[f"model.diffusion_model.block{index:04d}.weight"] = {
            "dtype": "F16", "shape": [TENSOR_BYTES // 2], "data_offsets": [index * TENSOR_BYTES, (index + 1) * TENSOR_BYTES]}
    body = json.dumps(header).encode()
    length = len(body) + 8192  # room for the ModelSpec keys: the in-place case
    rng = np.random.default_rng(0)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", length) + body + b" " * (length - len(body)))
        for _ in range(count):
            handle.write(rng.integers(0, 2**16 - 1, TENSOR_BYTES // 2, dtype=np.uint16).view(np.float16).tobytes())


def measure(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--generate":
        generate(Path(sys.argv[2]), int(sys.argv[3]))
        return 0
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--size-gb", type=float, default=1.0, help="file size in GiB (default 1)")
    cli.add_argument("--runs", type=int, default=3)
    cli.add_argument("--dir", type=Path, default=None, help="where to write the files (default: a temp folder)")
    cli.add_argument("--json", type=Path, default=None, help="also write the results here")
    options = cli.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_stamp.", dir=options.dir))
    try:
        model, copy, resaved = folder / "model.safetensors", folder / "copy.safetensors", folder / "resaved.safetensors"
        # generated in a child: on Linux a child's peak RSS starts from its parent's at fork, so the
        # parent stays small (no numpy here) and its ~10 MiB is the floor of every number below
        subprocess.run([sys.executable, __file__, "--generate", str(model), str(int(options.size_gb * 2**30))], check=True)
        size = model.stat().st_size
        swim = [sys.executable, "-m", "swimlatent_wrap", "stamp", str(model)]
        commands = {
            "sha256sum": ["sha256sum", str(model)],
            **({"openssl dgst -sha256": ["openssl", "dgst", "-sha256", str(model)]} if shutil.which("openssl") else {}),
            # a new title each run, so every in-place run really rewrites the header (an unchanged
            # header is not written at all)
            "stamp in place": swim + ["--set", "title=bench {run}"],
            "stamp copy (--out)": swim + ["--out", str(copy), "--set", "title=bench"],
            "safetensors load+save": [sys.executable, "-c", "import sys; from safetensors.numpy import load_file, save_file; "
                                      "save_file(load_file(sys.argv[1]), sys.argv[2])", str(model), str(resaved)],
        }
        measure(["cat", str(model)] if shutil.which("cat") else commands["sha256sum"])  # warm the page cache
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for run in range(options.runs):
            for name, argv in commands.items():
                results[name].append(measure([part.replace("{run}", str(run)) for part in argv]))
                for extra in (copy, resaved):
                    extra.unlink(missing_ok=True)
        floor = statistics.median(w for w, _ in results["sha256sum"])
        openssl = statistics.median(w for w, _ in results["openssl dgst -sha256"]) if "openssl dgst -sha256" in results else None
        rows = []
        own = measure([sys.executable, "-c", "pass"])[1]
        print(f"peak RSS of `python -c pass` started from here: {own:.0f} MiB (the floor of the RSS column)")
        print(f"file: {size / 2**30:.2f} GiB ({size:,} bytes), {options.runs} runs each, medians; python {sys.version.split()[0]}")
        print(f"{'command':<24}{'seconds':>9}{'× sha256sum':>13}{'× openssl':>11}{'GiB/s':>8}{'peak RSS MiB':>14}")
        for name, samples in results.items():
            wall = statistics.median(w for w, _ in samples)
            rss = max(r for _, r in samples)
            rows.append({"command": name, "seconds": wall, "ratio": wall / floor, "peak_rss_mib": rss,
                         "ratio_openssl": wall / openssl if openssl else None})
            versus_openssl = f"{wall / openssl:>11.2f}" if openssl else f"{'-':>11}"
            print(f"{name:<24}{wall:>9.2f}{wall / floor:>13.2f}{versus_openssl}{size / 2**30 / wall:>8.2f}{rss:>14.0f}")
        if options.json:
            options.json.write_text(json.dumps({"size_bytes": size, "runs": options.runs, "rows": rows}, indent=2) + "\n")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

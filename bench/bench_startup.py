#!/usr/bin/env python3
"""Start-up cost of the CLI: `swimlatent --help` and `swimlatent plan` against `python -c pass`.

Each command runs N times, interleaved (so machine noise hits all alike); medians are compared as
ratios to the bare interpreter in the same run.

    python bench/bench_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--runs", type=int, default=20)
    options = cli.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "swimlatent --help": [sys.executable, "-m", "swimlatent_wrap", "--help"],
            "swimlatent plan (base)": [sys.executable, "-m", "swimlatent_wrap", "--workdir", f"{tmp}/work", "plan",
                                       str(REPO / "recipes/swim-in-latent/base.toml"), "--out", f"{tmp}/plan"],
            "swimlatent plan (lora)": [sys.executable, "-m", "swimlatent_wrap", "--workdir", f"{tmp}/work", "plan",
                                       str(REPO / "recipes/swim-in-latent/lora.toml"), "--out", f"{tmp}/plan-lora"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(options.runs):
            for name, argv in commands.items():
                start = time.perf_counter()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
                times[name].append(time.perf_counter() - start)
    floor = statistics.median(times["python -c pass"])
    print(f"{'command':<26} {'median ms':>10} {'min ms':>8} {'ratio':>7}   ({options.runs} runs each, interleaved)")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<26} {median * 1000:>10.1f} {min(samples) * 1000:>8.1f} {median / floor:>6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

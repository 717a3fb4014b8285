#!/usr/bin/env python3
"""`swimlatent collect` throughput against a loopback fake Danbooru with injected latency, compared in
the same run with the ideal rate its own settings allow (the pacing and the concurrency).

The fake (tests/danbooru/fake.py) serves the API and the files over real HTTP; every request
waits `--latency` seconds. The ideal time for a run is the larger of what the pacing allows,
(API requests + file requests) / requests_per_second, and what the concurrency allows with that
latency, files × latency / concurrency. gallery-dl is not measured: it cannot be pointed at a
loopback Danbooru without a config of its own instance, which this benchmark does not build.

    python bench/bench_collect.py [--images 120] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.danbooru.conftest import write_recipe  # noqa: E402
from tests.danbooru.fake import Fake  # noqa: E402


def one_run(images: int, latency: float, rps: float, concurrency: int) -> dict:
    fake = Fake()
    for post_id in range(1, images * 2 + 1):
        fake.add_post(post_id, score=1000 - post_id, rating="g" if post_id % 2 else "s")
    fake.file_latency = fake.api_latency = latency
    url = fake.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            recipe = write_recipe(Path(tmp) / "recipes", url, images, rps=rps)
            text = recipe.read_text().replace("concurrency = 2", f"concurrency = {concurrency}")
            recipe.write_text(text)
            env = {k: v for k, v in os.environ.items() if not k.startswith("DANBOORU_")}
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "swimlatent_wrap", "--workdir", f"{tmp}/work", "collect", str(recipe)],
                                  capture_output=True, text=True, env=env, cwd=REPO)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"collect failed: {done.stderr[-2000:]}")
            got = len(list((Path(tmp) / "work" / "datasets" / "dbtest" / "images").glob("*.png")))
    finally:
        fake.stop()
    files, api = sum(fake.file_requests.values()), len(fake.api_requests)
    ideal = max((files + api) / rps, files * latency / concurrency)
    return {"images": got, "seconds": seconds, "files": files, "api": api, "ideal": ideal}


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--images", type=int, default=120)
    cli.add_argument("--latency", type=float, default=0.05, help="seconds each request waits on the server")
    options = cli.parse_args()
    print(f"{options.images} images, {options.latency * 1000:.0f} ms per request on the loopback fake")
    print(f"{'rate/s':>7} {'conc':>5} {'images':>7} {'API req':>8} {'seconds':>8} {'img/s':>7} {'ideal img/s':>12} {'of ideal':>9}")
    for rps, concurrency in ((10.0, 2), (40.0, 2), (40.0, 4)):
        r = one_run(options.images, options.latency, rps, concurrency)
        rate, ideal_rate = r["images"] / r["seconds"], r["images"] / r["ideal"]
        print(f"{rps:>7.0f} {concurrency:>5} {r['images']:>7} {r['api']:>8} {r['seconds']:>8.2f} {rate:>7.2f} "
              f"{ideal_rate:>12.2f} {rate / ideal_rate:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

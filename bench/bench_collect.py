#!/usr/bin/env python3
"""`swimlatent collect` throughput (images/s) against a loopback fake Danbooru with injected latency,
compared in the same run with gallery-dl on the same server, the same searches and the same pacing,
and with the ideal rate that pacing and latency allow.

The fake (tests/danbooru/fake.py) serves /posts.json and the files over real HTTP; every request waits
`--latency` seconds before its answer. Each file is a real PNG of `--kb` KB (noise, so it does not
compress). Both tools run as child processes, end to end: start-up, searches, downloads (and for
swimlatent its md5 checks, manifest and report too).

Same settings:
- the searches: swimlatent's own plan for the recipe (one search per rating split, `window_days = 0`
  so that both send the same query), given to gallery-dl as two tag URLs with `--range 1-<half>`;
- "paced": swimlatent `requests_per_second = R` (every API and file request shares it), gallery-dl
  `sleep-request = sleep = 1/R` (it waits that long before each API request and each download);
- "unpaced": no pacing in either; swimlatent at concurrency 1 (gallery-dl downloads one file at a
  time) and at its default 2 / a higher 4.

The ideal time of a run is the larger of requests / R (the pacing) and requests × latency / concurrency
(the latency); gallery-dl's ideal is computed the same way with concurrency 1.

gallery-dl is looked up as `--gallery-dl PATH`, else on PATH, else /tmp/gdl-venv/bin/gallery-dl:

    python3 -m venv /tmp/gdl-venv && /tmp/gdl-venv/bin/pip install gallery-dl
    .venv/bin/python bench/bench_collect.py [--images 60] [--latency 0.05] [--rate 10] [--kb 64]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.danbooru.conftest import write_recipe  # noqa: E402
from tests.danbooru.fake import Fake  # noqa: E402


def noise_png(seed: int, kb: int) -> bytes:
    from PIL import Image

    side = max(8, int((kb * 1024 / 3) ** 0.5))
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def make_fake(images: int, latency: float, kb: int) -> Fake:
    fake = Fake()
    payloads = [noise_png(i, kb) for i in range(8)]
    for post_id in range(1, images * 2 + 1):
        # distinct files (md5) from a few noise payloads: the post id appended as a PNG-trailing comment
        data = payloads[post_id % 8] + post_id.to_bytes(4, "big")
        fake.add_post(post_id, score=1000 - post_id, rating="g" if post_id % 2 else "s", days_old=1 + post_id % 900, data=data)
    fake.file_latency = fake.api_latency = latency
    fake.start()
    return fake


def counts(fake: Fake) -> tuple[int, int]:
    return sum(fake.file_requests.values()), len(fake.api_requests)


def reset(fake: Fake) -> None:
    fake.file_requests.clear()
    fake.api_requests.clear()
    fake.api_queries.clear()
    fake.user_agents.clear()


def run_swimlatent(fake: Fake, images: int, rate: float, concurrency: int, tmp: Path) -> dict:
    reset(fake)
    recipe = write_recipe(tmp / "recipes", fake.url, images, rps=rate, concurrency=concurrency, extra="window_days = 0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANBOORU_")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "swimlatent_wrap", "--workdir", str(tmp / "work"), "collect", str(recipe)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"swimlatent collect failed: {done.stderr[-2000:]}")
    got = len(list((tmp / "work" / "datasets" / "dbtest" / "images").glob("*.png")))
    files, api = counts(fake)
    return {"images": got, "seconds": seconds, "files": files, "api": api}


def plan_terms(fake: Fake, images: int, tmp: Path) -> list[tuple[str, int]]:
    """swimlatent's own searches for the bench recipe: (tags, how many images) per split."""
    from swimlatent_wrap.danbooru import query as q
    from swimlatent_wrap.recipe import load_recipe

    recipe = write_recipe(tmp / "plan", fake.url, images, extra="window_days = 0")
    plan = q.plan(load_recipe(recipe).dataset.danbooru, images)
    return [(" ".join(split.searches[0].terms), split.target) for split in plan.splits]


def run_gallery_dl(exe: str, fake: Fake, searches: list[tuple[str, int]], rate: float | None, tmp: Path) -> dict:
    reset(fake)
    port = fake.url.rsplit(":", 1)[1]
    interval = 1.0 / rate if rate else 0
    config = {"extractor": {
        # gallery-dl's own way to add a Danbooru instance: extractor.Danbooru.<name> = {root, pattern}
        "Danbooru": {"fakebooru": {"root": fake.url, "pattern": r"127\.0\.0\.1:" + port}},
        "fakebooru": {"sleep-request": interval, "sleep": interval},
        "base-directory": str(tmp / "gdl"), "skip": True}}
    (tmp / "gdl.json").write_text(json.dumps(config))
    start = time.perf_counter()
    for tags, n in searches:
        url = f"{fake.url}/posts?tags={quote(tags)}"
        done = subprocess.run([exe, "--config-ignore", "-c", str(tmp / "gdl.json"), "--range", f"1-{n}", url],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"gallery-dl failed: {done.stderr[-2000:]}")
    seconds = time.perf_counter() - start
    got = sum(1 for p in (tmp / "gdl").rglob("*.png"))
    files, api = counts(fake)
    return {"images": got, "seconds": seconds, "files": files, "api": api}


def ideal_seconds(r: dict, rate: float | None, latency: float, concurrency: int) -> float:
    requests = r["files"] + r["api"]
    paced = requests / rate if rate else 0.0
    return max(paced, requests * latency / concurrency)


def find_gallery_dl(given: str | None) -> str | None:
    for candidate in (given, shutil.which("gallery-dl"), "/tmp/gdl-venv/bin/gallery-dl"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--images", type=int, default=60)
    cli.add_argument("--latency", type=float, default=0.05, help="seconds each request waits on the server")
    cli.add_argument("--rate", type=float, default=10.0, help="requests per second in the paced runs")
    cli.add_argument("--kb", type=int, default=64, help="size of each image file")
    cli.add_argument("--gallery-dl", dest="gallery_dl", default=None)
    options = cli.parse_args()
    exe = find_gallery_dl(options.gallery_dl)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip() if exe else None
    fake = make_fake(options.images, options.latency, options.kb)
    print(f"{options.images} images of ~{options.kb} KB, {options.latency * 1000:.0f} ms per request on the loopback fake; "
          f"gallery-dl {version or 'not found: compared with the ideal rate only'}")
    header = f"{'run':<34} {'images':>6} {'API':>4} {'files':>5} {'seconds':>8} {'img/s':>7} {'ideal img/s':>11} {'of ideal':>8}"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            searches = plan_terms(fake, options.images, Path(scratch))
            for label, rate in (("paced", options.rate), ("unpaced", None)):
                print(f"\n{label}: " + (f"{rate:g} requests/s" if rate else "no pacing"))
                print(header)
                rows = {}
                runs = [(f"swimlatent concurrency {c}", "ours", c) for c in ((1, 2) if rate else (1, 2, 4))]
                if exe:
                    runs.append(("gallery-dl (one at a time)", "gdl", 1))
                for name, tool, concurrency in runs:
                    with tempfile.TemporaryDirectory() as tmp:
                        if tool == "ours":
                            r = run_swimlatent(fake, options.images, rate or 100000.0, concurrency, Path(tmp))
                        else:
                            r = run_gallery_dl(exe, fake, searches, rate, Path(tmp))
                    ideal = ideal_seconds(r, rate, options.latency, concurrency)
                    speed, ideal_speed = r["images"] / r["seconds"], r["images"] / ideal
                    rows[name] = speed
                    print(f"{name:<34} {r['images']:>6} {r['api']:>4} {r['files']:>5} {r['seconds']:>8.2f} {speed:>7.2f} "
                          f"{ideal_speed:>11.2f} {speed / ideal_speed:>7.2f}x")
                gdl = rows.get("gallery-dl (one at a time)")
                if gdl:
                    for name, speed in rows.items():
                        if name.startswith("swimlatent"):
                            print(f"  {name} / gallery-dl: {speed / gdl:.2f}x")
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

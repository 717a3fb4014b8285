"""Benchmark: `swimlatent tag` end to end, against pure onnxruntime and sd-scripts' own tagger.

    .venv/bin/python bench/bench_tag.py [--images 48] [--swin-images 16] [--batch-size 8] [--skip-swin]
    SWIMLATENT_SD_SCRIPTS=DIR SWIMLATENT_SD_PYTHON=PY .venv/bin/python bench/bench_tag.py   (with the peer)

On Danbooru-sized JPEGs (2000–4000 px, bench/tag_images.py), with two models built here:
(a) the tests' tiny tagger: inference is free, so this times our pipeline's own overhead
    (decoding, preprocessing, captions, writes); (b) a SwinV2-base-sized model with random
weights (bench/tag_swinv2.py): how close the whole pipeline gets to pure onnxruntime inference
on this machine. The peer is sd-scripts' finetune/tag_images_by_wd14_tagger.py --onnx on the same
images, model, batch size and thresholds, with --max_data_loader_n_workers set to the core count;
it runs only when SWIMLATENT_SD_SCRIPTS (a checkout) and SWIMLATENT_SD_PYTHON or SD_PYTHON (a
Python with its requirements + onnx + onnxruntime) are set, and is skipped with a message otherwise.

Every number is measured in the same run. "end-to-end" is wall time of the whole command
(interpreter start, imports, model load included) for N images; "steady" removes the fixed cost
the same way for every tool: (N − B) / (time for N images − time for one batch of B images).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from tag_images import danbooru_like_jpegs  # noqa: E402
from tag_swinv2 import build_swinv2_tagger  # noqa: E402

from tests.tagger.tiny_tagger import build_tiny_tagger  # noqa: E402

RESULTS = HERE / "results"
GENERAL_THRESHOLD = 0.35


def peer_setup() -> tuple[Path, str] | None:
    checkout = os.environ.get("SWIMLATENT_SD_SCRIPTS", "")
    python = os.environ.get("SWIMLATENT_SD_PYTHON") or os.environ.get("SD_PYTHON", "")
    if not checkout or not (Path(checkout) / "finetune" / "tag_images_by_wd14_tagger.py").is_file() or not python:
        return None
    return Path(checkout), python


def linked_folder(root: Path, name: str, images: list[Path]) -> Path:
    """A folder of hard links to ``images`` (each tool writes its captions into its own folder)."""
    folder = root / name
    folder.mkdir(parents=True)
    for image in images:
        os.link(image, folder / image.name)
    return folder


def timed(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench_tag: failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-3000:]}")
    return seconds


def ours(folder: Path, model: Path, batch: int) -> float:
    return timed([sys.executable, "-m", "swimlatent_wrap", "tag", "--images", str(folder), "--model", str(model),
                  "--batch-size", str(batch), "--force"], cwd=REPO)


def peer(setup: tuple[Path, str], folder: Path, model: Path, batch: int) -> float:
    checkout, python = setup
    # sd-scripts reads <model_dir>/<repo id with / → _>/model.onnx + selected_tags.csv.
    model_dir = folder.parent / "peer_models"
    model_dir.mkdir(exist_ok=True)
    link = model_dir / f"bench_{model.name}"
    if not link.exists():
        link.symlink_to(model, target_is_directory=True)
    workers = os.cpu_count() or 1
    # --character_threshold 1.1: the pinned commit's --onnx path crashes when a character tag passes.
    return timed([python, str(checkout / "finetune" / "tag_images_by_wd14_tagger.py"), str(folder), "--onnx",
                  "--repo_id", f"bench/{model.name}", "--model_dir", str(model_dir), "--batch_size", str(batch),
                  "--max_data_loader_n_workers", str(workers), "--general_threshold", str(GENERAL_THRESHOLD),
                  "--character_threshold", "1.1", "--remove_underscore"],
                 cwd=checkout, env={"PYTHONPATH": str(checkout)})


def pure_onnxruntime(model: Path, count: int, batch: int) -> float:
    """images/s of onnxruntime alone on ready-made inputs, the same session settings as ours."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    inputs = np.random.default_rng(0).uniform(0, 255, (batch, 448, 448, 3)).astype(np.float32)
    session.run(None, {name: inputs})  # warm-up
    started, done = time.perf_counter(), 0
    while done < count:
        take = min(batch, count - done)
        session.run(None, {name: inputs[:take]})
        done += take
    return count / (time.perf_counter() - started)


def decode_costs(images: list[Path]) -> dict:
    """Single-thread preprocessing cost and the pixel difference draft mode makes, per image."""
    import numpy as np
    from PIL import Image

    from swimlatent_wrap.tagger.preprocess import model_input, preprocess_file

    draft_s, full_s, diffs = [], [], []
    for path in images:
        started = time.perf_counter()
        drafted = preprocess_file(path, 448)
        draft_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        with Image.open(path) as image:
            full = model_input(image.convert("RGB"), 448)
        full_s.append(time.perf_counter() - started)
        diffs.append(float(np.abs(drafted - full).mean()))
    return {"draft_ms": 1000 * sum(draft_s) / len(images), "full_decode_ms": 1000 * sum(full_s) / len(images),
            "mean_abs_grey_levels": sum(diffs) / len(diffs), "max_image_mean_abs": max(diffs)}


def general_tag_agreement(ours_dir: Path, peer_dir: Path, model: Path) -> tuple[int, int]:
    """Images whose general tags (as sets) are the same in both tools' captions."""
    import csv

    from swimlatent_wrap.tagger.caption import written_form

    with open(model / "selected_tags.csv", newline="", encoding="utf-8") as handle:
        general = {written_form(row["name"]) for row in csv.DictReader(handle) if row["category"] == "0"}
    same = total = 0
    for caption in sorted(ours_dir.glob("*.txt")):
        theirs = peer_dir / caption.name
        mine = set(caption.read_text().strip().split(", ")) & general
        other = set(filter(None, theirs.read_text().strip().split(", "))) if theirs.exists() else None
        total += 1
        same += mine == other
    return same, total


def measure(label: str, model: Path, images: list[Path], batch: int, setup, pure: bool) -> dict:
    small = images[:batch]
    result: dict = {"model": label, "images": len(images), "batch": batch}
    with tempfile.TemporaryDirectory(prefix="bench_tag_") as temp:
        root = Path(temp)
        folders = {name: linked_folder(root, name, chosen) for name, chosen in
                   (("ours", images), ("ours_small", small), ("peer", images), ("peer_small", small))}
        if pure:
            print(f"  {label}: pure onnxruntime …", flush=True)
            result["pure_images_per_s"] = pure_onnxruntime(model, len(images), batch)
        print(f"  {label}: swimlatent tag …", flush=True)
        full, one_batch = ours(folders["ours"], model, batch), ours(folders["ours_small"], model, batch)
        result["ours"] = _rates(len(images), batch, full, one_batch)
        if setup:
            print(f"  {label}: sd-scripts tag_images_by_wd14_tagger.py --onnx …", flush=True)
            full, one_batch = peer(setup, folders["peer"], model, batch), peer(setup, folders["peer_small"], model, batch)
            result["peer"] = _rates(len(images), batch, full, one_batch)
            result["same_general_tags"] = general_tag_agreement(folders["ours"], folders["peer"], model)
    return result


def _rates(count: int, batch: int, full: float, one_batch: float) -> dict:
    steady = (count - batch) / (full - one_batch) if full > one_batch and count > batch else float("nan")
    return {"seconds": full, "one_batch_seconds": one_batch, "end_to_end": count / full, "steady": steady}


def report(results: list[dict], costs: dict, setup, args) -> None:
    print()
    print(f"swimlatent tag benchmark — {os.cpu_count()} CPU core(s), {platform.machine()}, onnxruntime CPU, "
          f"batch {args.batch_size}, JPEGs 2000–4000 px")
    print(f"preprocessing one image, one thread: {costs['draft_ms']:.0f} ms with draft decoding, "
          f"{costs['full_decode_ms']:.0f} ms decoding in full; draft vs full: {costs['mean_abs_grey_levels']:.2f} "
          f"grey levels mean |difference| (worst image {costs['max_image_mean_abs']:.2f})")
    print(f"{'model':<13}{'tool':<24}{'images':>7}{'wall s':>9}{'end-to-end img/s':>18}{'steady img/s':>14}")
    for r in results:
        rows = [("swimlatent tag", r["ours"])] + ([("sd-scripts --onnx", r["peer"])] if "peer" in r else [])
        for tool, rate in rows:
            print(f"{r['model']:<13}{tool:<24}{r['images']:>7}{rate['seconds']:>9.1f}{rate['end_to_end']:>18.2f}{rate['steady']:>14.2f}")
        if "pure_images_per_s" in r:
            print(f"{r['model']:<13}{'onnxruntime alone':<24}{r['images']:>7}{'':>9}{'':>18}{r['pure_images_per_s']:>14.2f}")
    print("ratios (measured in this run):")
    for r in results:
        if "pure_images_per_s" in r:
            print(f"  {r['model']}: swimlatent steady / onnxruntime alone = {r['ours']['steady'] / r['pure_images_per_s']:.2f}")
        if "peer" in r:
            same, total = r["same_general_tags"]
            print(f"  {r['model']}: swimlatent / sd-scripts = {r['ours']['end_to_end'] / r['peer']['end_to_end']:.2f}× end to end, "
                  f"{r['ours']['steady'] / r['peer']['steady']:.2f}× steady; same general tags on {same}/{total} images")
    if not setup:
        print("  sd-scripts peer skipped: set SWIMLATENT_SD_SCRIPTS=<checkout> and SWIMLATENT_SD_PYTHON=<its python> "
              "(with onnx + onnxruntime) to compare")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48, help="JPEGs for the tiny model (default 48)")
    parser.add_argument("--swin-images", type=int, default=16, help="JPEGs for the SwinV2-base-sized model (default 16)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size for every tool (default 8, the recipe default)")
    parser.add_argument("--skip-swin", action="store_true", help="only the tiny model")
    parser.add_argument("--out", type=Path, default=RESULTS / "tag.json", help="where the numbers go as JSON")
    args = parser.parse_args()
    setup = peer_setup()
    if setup is None:
        print("bench_tag: sd-scripts peer skipped (SWIMLATENT_SD_SCRIPTS and SWIMLATENT_SD_PYTHON / SD_PYTHON not set)")
    print("preparing images and models (cached under bench/results/) …", flush=True)
    images = danbooru_like_jpegs(RESULTS / "tag_images", max(args.images, args.swin_images))
    tiny = RESULTS / "tag_models" / "tiny"
    if not (tiny / "model.onnx").exists():
        build_tiny_tagger(tiny)
    load = os.getloadavg()
    results = [measure("tiny", tiny, images[:args.images], args.batch_size, setup, pure=False)]
    if not args.skip_swin:
        swin = RESULTS / "tag_models" / "swinv2_base"
        if not (swin / "model.onnx").exists():
            build_swinv2_tagger(swin)
        results.append(measure("swinv2-base", swin, images[:args.swin_images], args.batch_size, setup, pure=True))
    costs = decode_costs(images[:8])
    report(results, costs, setup, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "preprocess": costs, "load_average_before": load,
                                    "load_average_after": os.getloadavg(), "cpus": os.cpu_count()}, indent=2))
    print(f"load average before/after: {load[0]:.2f} / {os.getloadavg()[0]:.2f}; numbers in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

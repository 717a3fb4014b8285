"""Small helpers shared by the test tiers: the real CLI as a child process, and test images."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*argv: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`swimlatent ARGV` in a real child process (the installed entry point's module)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "swimlatent_wrap", *argv], capture_output=True, text=True,
                          cwd=cwd or REPO, env=full_env, timeout=timeout)


def make_images(folder: Path, count: int, caption: str | None = None) -> list[Path]:
    """``count`` small PNGs of SDXL-like aspect ratios, each with a .txt caption when given."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(1024, 1024), (832, 1216), (1216, 832)]
    paths = []
    for index in range(count):
        path = folder / f"img{index:03d}.png"
        Image.new("RGB", sizes[index % len(sizes)], (index * 40 % 256, 90, 160)).save(path)
        if caption is not None:
            path.with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
        paths.append(path)
    return paths

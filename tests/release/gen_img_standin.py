"""Stand-in for sd-scripts' sdxl_gen_img.py (copied into a fake checkout by the sweep tests).

Parses its command line with a parser built from the option manifest (so an option the real
script lacks fails here too), reads --from_file the way sdxl_gen_img does (prompt, then options
after " --"), and writes one PNG per line, named im_000001.png … with --sequential_file_name.
Real tier: tests/real/test_chain.py::test_lora_trains_sweeps_merges_and_releases runs the real
sdxl_gen_img.py with the same prompt file (per-line --am ratios) and finds its im_NNNNNN.png cells.
Each image's colour encodes its --am ratio (red) and --d seed (green) so tests can check the grid.
STANDIN_GEN_SKIP=N leaves out the N-th image.
"""

import os
import sys
from pathlib import Path

from PIL import Image

from swimlatent_wrap.sdscripts.parser import build_parser


def main() -> int:
    args = build_parser("sdxl_gen_img").parse_args(sys.argv[1:])
    assert args.sequential_file_name and args.network_weights and args.ckpt
    skip = int(os.environ.get("STANDIN_GEN_SKIP", "0"))
    lines = [l for l in Path(args.from_file).read_text().splitlines() if l.strip() and not l.startswith("#")]
    for number, line in enumerate(lines, 1):
        options = {}
        for part in line.split(" --")[1:]:
            key, _, value = part.partition(" ")
            options[key.lower()] = value
        width, height = int(options["w"]), int(options["h"])
        ratio, seed = float(options["am"]), int(options["d"])
        if number == skip:
            continue
        image = Image.new("RGB", (width, height), (round(255 * ratio), seed % 256, 0))
        image.save(Path(args.outdir) / f"im_{number:06d}.png")
        print(f"saved im_{number:06d}.png ratio {ratio} seed {seed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

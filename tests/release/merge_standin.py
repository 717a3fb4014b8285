"""Stand-in for sd-scripts' networks/sdxl_merge_lora.py (a real child process in the merge tests).

Parses the same options as the pinned script (facts §3) and does the real merge into a checkpoint:
W += ratio * (up @ down) * alpha / dim for every LoRA module, with numpy, saved with the safetensors
package's numpy API and sd-scripts' ModelSpec keys. STANDIN_MERGE_SKIP=a,b skips those modules
(as sd-scripts does when it cannot find a key: it only logs them).
"""

import os
import pathlib
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

from swimlatent_wrap.sdscripts.parser import build_parser


def main() -> int:
    parser = build_parser("sdxl_merge_lora")  # the pinned script's options, from the manifest
    args = parser.parse_args()
    assert len(args.models) == len(args.ratios), "number of models must be equal to number of ratios"
    skip = {s for s in os.environ.get("STANDIN_MERGE_SKIP", "").split(",") if s}
    model = {k: v.astype(np.float32) for k, v in load_file(args.sd_model).items()}
    names = {}
    for key in model:
        if key.startswith("model.diffusion_model.") and key.endswith(".weight"):
            names["lora_unet_" + key[len("model.diffusion_model."):-len(".weight")].replace(".", "_")] = key
    for path, ratio in zip(args.models, args.ratios):
        lora = load_file(path)
        for name in sorted(k[: -len(".lora_down.weight")] for k in lora if k.endswith(".lora_down.weight")):
            if name in skip or name not in names:
                print(f"no module found for LoRA weight: {name}", flush=True)
                continue
            down = lora[name + ".lora_down.weight"].astype(np.float32)
            up = lora[name + ".lora_up.weight"].astype(np.float32)
            dim = down.shape[0]
            alpha = float(lora.get(name + ".alpha", np.array(dim, np.float32)))
            key = names[name]
            delta = (up.reshape(up.shape[0], -1) @ down.reshape(dim, -1)).reshape(model[key].shape)
            model[key] = model[key] + ratio * delta * (alpha / dim)
    dtype = {"float": np.float32, "fp16": np.float16, None: np.float32}[args.save_precision or args.precision]
    metadata = None if args.no_metadata else {
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": "stable-diffusion-xl-v1-base",
        "modelspec.title": pathlib.Path(args.save_to).stem,
        "modelspec.merged_from": ", ".join(pathlib.Path(p).stem for p in [args.sd_model, *args.models]),
    }
    save_file({k: v.astype(dtype) for k, v in model.items()}, args.save_to, metadata=metadata)
    print(f"saved model to: {args.save_to}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

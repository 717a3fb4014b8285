"""Stand-in for sd-scripts' networks/sdxl_merge_lora.py (a real child process in the merge tests).

Parses the same options as the pinned script (facts §3) and does the real merge into a checkpoint:
W += ratio * (up @ down) * alpha / dim for every LoRA module, with numpy, saved with the safetensors
package's numpy API and sd-scripts' ModelSpec keys. STANDIN_MERGE_SKIP=a,b skips those modules
(as sd-scripts does when it cannot find a key: it only logs them).

Text encoders as sd-scripts saves them (sdxl_model_util.save_stable_diffusion_checkpoint): te1 keys
are the layer names; te2 is converted back to the OpenCLIP layout, fc1/fc2 → mlp.c_fc/c_proj,
self_attn.out_proj → attn.out_proj, and q/k/v concatenated in that order into attn.in_proj_weight,
so lora_te2_…_self_attn_{q,k,v}_proj each write one third of that tensor's rows.

Real tier: tests/real/test_chain.py::test_lora_trains_sweeps_merges_and_releases runs the real
sdxl_merge_lora.py (fp16) and recomputes W + ratio·(up@down)·alpha/dim for sampled U-Net modules.
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
    names = {}  # module -> (key, row slice or None)
    te2 = "conditioner.embedders.1.model.transformer.resblocks."
    te2_parts = {"attn.out_proj.weight": ["self_attn_out_proj"], "mlp.c_fc.weight": ["mlp_fc1"],
                 "mlp.c_proj.weight": ["mlp_fc2"], "attn.in_proj_weight": ["self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj"]}
    for key in model:
        for prefix, lora_prefix in (("model.diffusion_model.", "lora_unet_"), ("conditioner.embedders.0.transformer.", "lora_te1_")):
            if key.startswith(prefix) and key.endswith(".weight"):
                names[lora_prefix + key[len(prefix):-len(".weight")].replace(".", "_")] = (key, None)
        if key.startswith(te2):
            layer, _, part = key[len(te2):].partition(".")
            for index, module in enumerate(te2_parts.get(part, [])):
                third = model[key].shape[0] // len(te2_parts[part])
                names[f"lora_te2_text_model_encoder_layers_{layer}_{module}"] = (key, slice(index * third, (index + 1) * third))
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
            key, rows = names[name]
            weight = model[key] if rows is None else model[key][rows]
            delta = (up.reshape(up.shape[0], -1) @ down.reshape(dim, -1)).reshape(weight.shape)
            if rows is None:
                model[key] = weight + ratio * delta * (alpha / dim)
            else:
                model[key][rows] = weight + ratio * delta * (alpha / dim)
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

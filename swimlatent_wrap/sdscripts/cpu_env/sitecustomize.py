"""Runs at start-up in every Python process of an sd-scripts run on CPU (`--allow-cpu`, `smoke` on
a machine without CUDA): the wrapper puts this folder first on the child's PYTHONPATH. It changes
no sd-scripts file and no training behaviour; it only makes the CPU machines we test on able to run
the real scripts. Each measure was needed by a measured run (see swimlatent_wrap/sdscripts/cpu.py):

1. torchvision import. PyPI's x86_64 torchvision wheels are CUDA builds; beside the CPU torch
   wheel `import torchvision` fails with "operator torchvision::nms does not exist" while
   registering fake kernels for its two compiled ops. sd-scripts only uses torchvision.transforms,
   so on that exact error the two op schemas are declared (the ops stay unusable) and the import
   is tried again. Any other error is left alone.
2. Saving without a second copy of the model. safetensors' `save_file` builds the whole file's
   bytes in memory before writing (the full fine-tune was killed at 19.1 GiB while saving on a
   24 GiB machine), and accelerate's `save_state` goes through it too. It is replaced, before
   sd-scripts or accelerate import it, by a writer of the same format that streams one tensor at
   a time.

Without torch (the wrapper's own stand-in scripts) this file does nothing.
"""

import json
import struct
import sys


def _torchvision_fallback(torch) -> None:
    try:
        import torchvision  # noqa: F401
    except RuntimeError as error:
        if "torchvision::nms does not exist" not in str(error):
            raise
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(library)  # the definitions live as long as the Library object
        import torchvision  # noqa: F401,F811
    except ImportError:
        pass  # no torchvision at all: sd-scripts will say so itself


_DTYPES = {}


def _streaming_save_file(tensors, filename, metadata=None):
    """safetensors.torch.save_file's format (8-byte little-endian header length, JSON header,
    then the tensors' bytes), written one tensor at a time."""
    import torch

    if not _DTYPES:
        _DTYPES.update({torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                        torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                        torch.uint8: "U8", torch.bool: "BOOL"})
        for name, code in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2")):
            if hasattr(torch, name):
                _DTYPES[getattr(torch, name)] = code
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    names = sorted(tensors)
    for name in names:
        tensor = tensors[name]
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": _DTYPES[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    with open(filename, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)))
        handle.write(text)
        for name in names:
            tensor = tensors[name].detach()
            if tensor.numel() == 0:
                continue
            flat = tensor.to("cpu").contiguous().reshape(-1).view(torch.uint8)
            handle.write(memoryview(flat.numpy()))


_KEEP: list = []


def _install() -> None:
    try:
        import torch
    except ImportError:
        return
    _torchvision_fallback(torch)
    try:
        import safetensors.torch
    except ImportError:
        return
    safetensors.torch.save_file = _streaming_save_file


_install()

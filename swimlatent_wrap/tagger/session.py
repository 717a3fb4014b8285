"""The onnxruntime session: which provider runs the model, and the model's input as it really is.

CUDA when onnxruntime-gpu and a GPU are there; otherwise the CPU, with a reason the user can act
on (the reason is shown as a warning by the caller, never silently). The input's name, size and
layout are read from the model at run time: TF-exported v2 models call it ``input_1:0``, other
exports ``input``; v2.0 exports fix the batch at 1, v2.1 and v3 leave it open.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from swimlatent_wrap.errors import UserError
from swimlatent_wrap.tagger.model_files import ModelFiles

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEFAULT_SIZE = 448  # WD14 taggers' input size, used only when a model leaves it dynamic


@dataclass(frozen=True)
class ProviderChoice:
    providers: list[str]
    cpu_reason: str | None  # why the GPU is not used; None when CUDA is asked for


def installed_onnxruntime_packages() -> set[str]:
    names = set()
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"):
        try:
            importlib.metadata.distribution(dist)
            names.add(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return names


def nvidia_gpu_visible() -> bool:
    # The kernel driver's files: present when a GPU is usable from this machine or container.
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def choose_providers(available: Sequence[str], installed: set[str], gpu_visible: bool) -> ProviderChoice:
    """CUDA first when onnxruntime offers it; else the CPU and the reason why, in words."""
    if CUDA in available:
        return ProviderChoice([CUDA, CPU], None)
    if "onnxruntime-gpu" in installed and "onnxruntime" in installed:
        why = ("both onnxruntime and onnxruntime-gpu are installed and the CPU build shadows the GPU one "
               "(uninstall both, then install onnxruntime-gpu)")
    elif "onnxruntime-gpu" in installed:
        why = f"onnxruntime-gpu is installed but does not offer {CUDA} (providers: {', '.join(available)})"
    else:
        why = "the installed onnxruntime is the CPU-only build (install onnxruntime-gpu instead for CUDA)"
    if not gpu_visible:
        why = "no NVIDIA GPU is visible (no /proc/driver/nvidia) and " + why
    return ProviderChoice([CPU], why)


@dataclass(frozen=True)
class InputSpec:
    name: str
    size: int
    channels_last: bool  # NHWC (SmilingWolf's exports) or NCHW
    fixed_batch: int | None  # the batch size baked into the model, if any
    float16: bool


def read_input_spec(name: str, shape: Sequence, type_name: str, where: Path) -> InputSpec:
    """Interpret the model's first input; UserError when it is not an image batch."""
    if len(shape) != 4 or not (shape[3] == 3 or shape[1] == 3):
        raise UserError(f"{where}: expected an image input [batch, size, size, 3] (or [batch, 3, size, size]), "
                        f"the model's input {name!r} is {list(shape)}")
    channels_last = shape[3] == 3
    height, width = (shape[1], shape[2]) if channels_last else (shape[2], shape[3])
    sizes = {s for s in (height, width) if isinstance(s, int) and s > 0}
    if len(sizes) > 1:
        raise UserError(f"{where}: the model's input is {height}x{width}; WD14 taggers take square images")
    if type_name not in ("tensor(float)", "tensor(float16)"):
        raise UserError(f"{where}: the model's input {name!r} is {type_name}; WD14 taggers take float32 pixels")
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return InputSpec(name, sizes.pop() if sizes else DEFAULT_SIZE, channels_last, batch, type_name == "tensor(float16)")


class TaggerSession:
    """One onnxruntime session; ``run`` takes a batch of preprocessed images, returns probabilities."""

    def __init__(self, files: ModelFiles, tag_count: int) -> None:
        import onnxruntime as ort

        choice = choose_providers(ort.get_available_providers(), installed_onnxruntime_packages(), nvidia_gpu_visible())
        self.cpu_reason = choice.cpu_reason
        try:
            session = ort.InferenceSession(str(files.onnx), providers=choice.providers)
        except Exception as error:  # onnxruntime raises its own pybind types; every one means "cannot load"
            if choice.providers[0] != CUDA:
                raise UserError(f"{files.onnx}: onnxruntime cannot load the model: {_one_line(error)}") from None
            # CUDA itself failed to start: run on the CPU and say why.
            self.cpu_reason = f"onnxruntime-gpu could not start CUDA: {_one_line(error)}"
            try:
                session = ort.InferenceSession(str(files.onnx), providers=[CPU])
            except Exception as cpu_error:
                raise UserError(f"{files.onnx}: onnxruntime cannot load the model: {_one_line(cpu_error)}") from None
        self.provider = session.get_providers()[0]
        if choice.cpu_reason is None and self.provider != CUDA and self.cpu_reason is None:
            self.cpu_reason = ("onnxruntime-gpu fell back to the CPU (see onnxruntime's message above; usually "
                               "a CUDA or cuDNN version this onnxruntime-gpu was not built for)")
        first = session.get_inputs()[0]
        self.input = read_input_spec(first.name, first.shape, first.type, files.onnx)
        output = session.get_outputs()[0]
        outputs = output.shape[-1] if output.shape else None
        if isinstance(outputs, int) and outputs > 0 and outputs != tag_count:
            raise UserError(f"{files.onnx}: the model gives {outputs} scores but {files.tags.name} lists {tag_count} tags; "
                            "are both files from the same tagger?")
        self._session = session
        self._output = output.name
        self._tag_count = tag_count
        self._where = files.onnx

    def run(self, batch):
        """``batch``: float32 [n, size, size, 3] BGR 0..255 → float32 [n, tags] probabilities."""
        import numpy as np

        count = len(batch)
        fixed = self.input.fixed_batch
        if fixed is not None and count < fixed:
            # A fixed-batch export (v2.0) takes exactly ``fixed`` images: pad, then drop the padding.
            batch = np.concatenate([batch, np.zeros((fixed - count, *batch.shape[1:]), batch.dtype)])
        if not self.input.channels_last:
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if self.input.float16:
            batch = batch.astype(np.float16)
        try:
            scores = self._session.run([self._output], {self.input.name: batch})[0]
        except Exception as error:  # onnxruntime's pybind error types
            raise UserError(f"{self._where}: onnxruntime failed on a batch of {count}: {_one_line(error)}") from None
        scores = np.asarray(scores, dtype=np.float32).reshape(len(batch), -1)[:count]
        if scores.shape[1] != self._tag_count:
            raise UserError(f"{self._where}: the model gave {scores.shape[1]} scores per image, the tag list has {self._tag_count}")
        low, high = float(scores.min(initial=0.0)), float(scores.max(initial=0.0))
        if low < 0.0 or high > 1.0:
            # SmilingWolf's graphs end in a sigmoid; raw logits mean another kind of export.
            raise UserError(f"{self._where}: the model's outputs run from {low:.3g} to {high:.3g}, not probabilities; "
                            "expected a WD14 export that ends in a sigmoid")
        return scores


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

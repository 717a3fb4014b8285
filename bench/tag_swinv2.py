"""A model of SwinV2-base size and shape, random weights, with the WD14 v2 tagger's I/O.

SmilingWolf's wd-v1-4-swinv2-tagger-v2 is SwinV2-B at 448 px: patch 4, window 14, embedding 128,
depths 2-2-18-2, heads 4-8-16-32, MLP ratio 4, res-post-norm blocks, cosine attention, a
continuous relative position bias, ~96 M parameters. This builds that graph with `onnx` so the
benchmark can time real-sized inference without downloading anything. Input ``input_1:0``
float32 [N, 448, 448, 3] (BGR 0..255, as the TF export), output ``predictions_sigmoid``
[N, tags]. Input-independent parts of the real graph (the position-bias MLP, the shift mask,
the clamped logit scale) are constants here, as an exporter folds them.

Head biases put a few dozen tags near p = 0.5 and the rest near 0, so captions have a
realistic length (random weights would otherwise put all ~9000 tags near 0.5).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SIZE = 448
PATCH = 4
WINDOW = 14
EMBED = 128
DEPTHS = (2, 2, 18, 2)
HEADS = (4, 8, 16, 32)
RATINGS = ("general", "sensitive", "questionable", "explicit")
GENERAL_TAGS = 6950  # an assumed split of a v2-sized tag list (the exact v2 count was not checked)
CHARACTER_TAGS = 2129
LIKELY_TAGS = 40  # general tags given p ≈ 0.5 by their bias


class _Graph:
    def __init__(self, seed: int) -> None:
        self.nodes, self.inits = [], []
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array, prefix="c") -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, values) -> str:
        return self.const(np.array(values, dtype=np.int64), "shape")

    def op(self, op_type: str, inputs, **attrs) -> str:
        from onnx import helper

        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def weight(self, *shape, std=0.02) -> str:
        return self.const((self.rng.standard_normal(shape) * std).astype(np.float32), "w")

    def linear(self, x: str, fan_in: int, fan_out: int, bias=True) -> str:
        y = self.op("MatMul", [x, self.weight(fan_in, fan_out)])
        return self.op("Add", [y, self.const(np.zeros(fan_out, np.float32), "b")]) if bias else y

    def layer_norm(self, x: str, dim: int) -> str:
        return self.op("LayerNormalization", [x, self.const(np.ones(dim, np.float32), "g"),
                                              self.const(np.zeros(dim, np.float32), "beta")], axis=-1, epsilon=1e-5)

    def gelu(self, x: str) -> str:
        scaled = self.op("Div", [x, self.const(np.float32(np.sqrt(2.0)))])
        erf = self.op("Add", [self.op("Erf", [scaled]), self.const(np.float32(1.0))])
        return self.op("Mul", [self.op("Mul", [x, erf]), self.const(np.float32(0.5))])

    def roll(self, x: str, shift: int, axis: int, length: int) -> str:
        """torch.roll on one axis: two slices, concatenated."""
        shift %= length
        if shift == 0:
            return x
        tail = self.op("Slice", [x, self.ints([length - shift]), self.ints([length]), self.ints([axis])])
        head = self.op("Slice", [x, self.ints([0]), self.ints([length - shift]), self.ints([axis])])
        return self.op("Concat", [tail, head], axis=axis)


def _shift_mask(resolution: int, shift: int) -> np.ndarray:
    """Swin's attention mask for shifted windows: [windows, 1, T, T], 0 or -100."""
    regions = np.zeros((resolution, resolution))
    label = 0
    for hs in (slice(0, -WINDOW), slice(-WINDOW, -shift), slice(-shift, None)):
        for ws in (slice(0, -WINDOW), slice(-WINDOW, -shift), slice(-shift, None)):
            regions[hs, ws] = label
            label += 1
    n = resolution // WINDOW
    windows = regions.reshape(n, WINDOW, n, WINDOW).transpose(0, 2, 1, 3).reshape(n * n, WINDOW * WINDOW)
    mask = np.where(windows[:, :, None] != windows[:, None, :], -100.0, 0.0)
    return mask[:, None].astype(np.float32)


def _block(g: _Graph, x: str, resolution: int, dim: int, heads: int, shift: int) -> str:
    """One SwinV2 block on x [N, L, C]: x + LN(attention(x)), then x + LN(MLP(x))."""
    n_side = resolution // WINDOW
    tokens = WINDOW * WINDOW
    head_dim = dim // heads
    grid = g.op("Reshape", [x, g.ints([-1, resolution, resolution, dim])])
    if shift:
        grid = g.roll(g.roll(grid, -shift, 1, resolution), -shift, 2, resolution)
    windows = g.op("Reshape", [grid, g.ints([-1, n_side, WINDOW, n_side, WINDOW, dim])])
    windows = g.op("Transpose", [windows], perm=[0, 1, 3, 2, 4, 5])
    windows = g.op("Reshape", [windows, g.ints([-1, tokens, dim])])
    qkv = g.linear(windows, dim, 3 * dim)
    qkv = g.op("Reshape", [qkv, g.ints([-1, tokens, 3, heads, head_dim])])
    qkv = g.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # [3, B', h, T, d]
    q, k, v = (g.op("Squeeze", [g.op("Slice", [qkv, g.ints([i]), g.ints([i + 1]), g.ints([0])]), g.ints([0])]) for i in range(3))
    # Cosine attention: normalised q and k, a per-head scale, plus the (constant) position bias.
    q = g.op("Div", [q, g.op("Max", [g.op("ReduceL2", [q], axes=[-1], keepdims=1), g.const(np.float32(1e-12))])])
    k = g.op("Div", [k, g.op("Max", [g.op("ReduceL2", [k], axes=[-1], keepdims=1), g.const(np.float32(1e-12))])])
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    scores = g.op("Mul", [scores, g.const(np.full((heads, 1, 1), 10.0, np.float32))])
    bias = 16 / (1 + np.exp(-g.rng.standard_normal((heads, tokens, tokens))))
    scores = g.op("Add", [scores, g.const(bias.astype(np.float32))])
    if shift:
        scores = g.op("Reshape", [scores, g.ints([-1, n_side * n_side, heads, tokens, tokens])])
        scores = g.op("Add", [scores, g.const(_shift_mask(resolution, shift))])
        scores = g.op("Reshape", [scores, g.ints([-1, heads, tokens, tokens])])
    attention = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    attention = g.op("Reshape", [g.op("Transpose", [attention], perm=[0, 2, 1, 3]), g.ints([-1, tokens, dim])])
    attention = g.linear(attention, dim, dim)
    back = g.op("Reshape", [attention, g.ints([-1, n_side, n_side, WINDOW, WINDOW, dim])])
    back = g.op("Transpose", [back], perm=[0, 1, 3, 2, 4, 5])
    back = g.op("Reshape", [back, g.ints([-1, resolution, resolution, dim])])
    if shift:
        back = g.roll(g.roll(back, shift, 1, resolution), shift, 2, resolution)
    back = g.op("Reshape", [back, g.ints([-1, resolution * resolution, dim])])
    x = g.op("Add", [x, g.layer_norm(back, dim)])
    mlp = g.linear(g.gelu(g.linear(x, dim, 4 * dim)), 4 * dim, dim)
    return g.op("Add", [x, g.layer_norm(mlp, dim)])


def _merge(g: _Graph, x: str, resolution: int, dim: int) -> str:
    """SwinV2 patch merging: 2×2 neighbours concatenated, reduced to 2C, then LayerNorm."""
    half = resolution // 2
    x = g.op("Reshape", [x, g.ints([-1, half, 2, half, 2, dim])])
    x = g.op("Transpose", [x], perm=[0, 1, 3, 4, 2, 5])
    x = g.op("Reshape", [x, g.ints([-1, half * half, 4 * dim])])
    return g.layer_norm(g.linear(x, 4 * dim, 2 * dim, bias=False), 2 * dim)


def tag_names() -> list[tuple[str, int]]:
    return ([(r, 9) for r in RATINGS] + [(f"general_tag_{i:04d}", 0) for i in range(GENERAL_TAGS)]
            + [(f"character_{i:04d}_(series)", 4) for i in range(CHARACTER_TAGS)])


def build_swinv2_tagger(folder: Path, seed: int = 0) -> Path:
    """Write model.onnx (~385 MB) + selected_tags.csv into ``folder``; return it."""
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    tags = tag_names()
    g = _Graph(seed)
    x = g.op("Transpose", ["input_1:0"], perm=[0, 3, 1, 2])
    x = g.op("Conv", [x, g.weight(EMBED, 3, PATCH, PATCH), g.const(np.zeros(EMBED, np.float32))],
             kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH])
    resolution = SIZE // PATCH
    x = g.op("Transpose", [g.op("Reshape", [x, g.ints([0, EMBED, -1])])], perm=[0, 2, 1])
    x = g.layer_norm(x, EMBED)
    dim = EMBED
    for stage, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
        for index in range(depth):
            shift = WINDOW // 2 if index % 2 and resolution > WINDOW else 0
            x = _block(g, x, resolution, dim, heads, shift)
        if stage < len(DEPTHS) - 1:
            x = _merge(g, x, resolution, dim)
            resolution //= 2
            dim *= 2
    x = g.op("ReduceMean", [g.layer_norm(x, dim)], axes=[1], keepdims=0)
    bias = np.full(len(tags), -6.0, np.float32)
    bias[g.rng.choice(np.arange(len(RATINGS), len(RATINGS) + GENERAL_TAGS), LIKELY_TAGS, replace=False)] = 0.0
    logits = g.op("Add", [g.op("MatMul", [x, g.weight(dim, len(tags))]), g.const(bias, "head_bias")])
    g.nodes.append(helper.make_node("Sigmoid", [logits], ["predictions_sigmoid"]))
    graph = helper.make_graph(g.nodes, "swinv2_base_wd14_shape",
                              [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
                              [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["N", len(tags)])],
                              initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "model.onnx")
    with open(folder / "selected_tags.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag_id", "name", "category", "count"])
        for index, (name, category) in enumerate(tags):
            writer.writerow([index, name, category, 1000])
    return folder


def parameter_count(path: Path) -> int:
    import onnx

    model = onnx.load(path, load_external_data=False)
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)

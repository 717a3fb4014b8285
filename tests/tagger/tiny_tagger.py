"""A tiny WD14 tagger the tests build with `onnx`: the real model's I/O, a readable inside.

Input ``input_1:0`` float32 [batch, 448, 448, 3], BGR 0..255 (as SmilingWolf's TF exports);
output ``predictions_sigmoid`` [batch, tags], probabilities. Inside: the mean of each channel
over each quadrant of the image (12 features, 0..1), one linear layer, a sigmoid. So the
probabilities follow from what an image looks like after padding and resizing, and a test can
compute them on paper: a wrong channel order, padding side or alpha handling moves them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SIZE = 448
CHANNELS = ("B", "G", "R")  # the model's input order
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def feature(channel: str, quadrants=QUADRANTS) -> np.ndarray:
    """Weights that average one channel over the given quadrants."""
    w = np.zeros(12)
    for q in quadrants:
        w[CHANNELS.index(channel) * 4 + QUADRANTS.index(q)] = 1.0 / len(quadrants)
    return w


BRIGHT = (feature("B") + feature("G") + feature("R")) / 3
TOP = sum(feature(c, ("top-left", "top-right")) for c in CHANNELS) / 3
BOTTOM = sum(feature(c, ("bottom-left", "bottom-right")) for c in CHANNELS) / 3
NONE = np.zeros(12)

# (tag, category, weights over the 12 features, bias): p = sigmoid(weights · features + bias).
# Categories as in selected_tags.csv: 9 rating, 0 general, 4 character.
TAGS = [
    ("general", 9, 6 * BRIGHT, -3.0),
    ("sensitive", 9, NONE, _logit(0.30)),
    ("questionable", 9, NONE, _logit(0.20)),
    ("explicit", 9, -6 * BRIGHT, 1.0),
    ("1girl", 0, NONE, _logit(0.95)),
    ("solo", 0, NONE, _logit(0.05)),
    ("looking_at_viewer", 0, NONE, _logit(0.36)),  # just above the general threshold (0.35)
    ("smile", 0, NONE, _logit(0.34)),  # just below it
    ("long_hair", 0, 12 * feature("R") - 6 * feature("G") - 6 * feature("B"), -1.0),
    ("^_^", 0, 12 * feature("G") - 6 * feature("R") - 6 * feature("B"), -1.0),  # a kaomoji: underscores stay
    ("o_o", 0, 10 * (TOP - BOTTOM), -1.0),  # top brighter than bottom; 3 characters: kept as is
    ("red_ribbon", 0, 14 * (feature("R", ("top-left", "bottom-left")) - feature("R", ("top-right", "bottom-right"))), -1.2),
    ("from_below", 0, 10 * (BOTTOM - TOP), -1.0),  # the mirror of o_o: padding must be centred vertically
    ("red_bow", 0, 14 * (feature("R", ("top-right", "bottom-right")) - feature("R", ("top-left", "bottom-left"))), -1.2),
    ("white_background", 0, 20 * BRIGHT, -17.0),
    ("blue_sky", 0, 12 * feature("B") - 6 * feature("R") - 6 * feature("G"), -0.8),
    ("hatsune_miku", 4, 16 * feature("B") - 8 * feature("R") - 8 * feature("G"), 0.0),
    ("kaga_(kantai_collection)", 4, NONE, _logit(0.86)),  # just above the character threshold (0.85)
    ("hakurei_reimu", 4, NONE, _logit(0.84)),  # just below it
]

NAMES = [t[0] for t in TAGS]
CATEGORIES = [t[1] for t in TAGS]
WEIGHTS = np.stack([t[2] for t in TAGS], axis=1).astype(np.float32)  # [12, tags]
BIASES = np.array([t[3] for t in TAGS], dtype=np.float32)


def probabilities(features: np.ndarray) -> np.ndarray:
    """What the model gives for these features (12 values, 0..1), computed in numpy."""
    logits = features.astype(np.float64) @ WEIGHTS.astype(np.float64) + BIASES.astype(np.float64)
    return 1.0 / (1.0 + np.exp(-logits))


def write_tags_csv(path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag_id", "name", "category", "count"])
        for index, (name, category, _, _) in enumerate(TAGS):
            writer.writerow([1000 + index, name, category, 5000 - index])


def build_tiny_tagger(folder: Path, input_name: str = "input_1:0", batch: int | str = "N",
                      channels_last: bool = True, sigmoid: bool = True) -> Path:
    """Write model.onnx + selected_tags.csv into ``folder`` and return it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    shape = [batch, SIZE, SIZE, 3] if channels_last else [batch, 3, SIZE, SIZE]
    nodes = []
    pooled_input = input_name
    if channels_last:
        nodes.append(helper.make_node("Transpose", [input_name], ["nchw"], perm=[0, 3, 1, 2]))
        pooled_input = "nchw"
    nodes += [
        helper.make_node("AveragePool", [pooled_input], ["pooled"], kernel_shape=[SIZE // 2, SIZE // 2], strides=[SIZE // 2, SIZE // 2]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Mul", ["flat", "inv255"], ["features"]),
        helper.make_node("MatMul", ["features", "weights"], ["mm"]),
        helper.make_node("Add", ["mm", "biases"], ["logits"]),
    ]
    output = "predictions_sigmoid" if sigmoid else "logits_out"
    nodes.append(helper.make_node("Sigmoid" if sigmoid else "Identity", ["logits"], [output]))
    graph = helper.make_graph(
        nodes, "tiny_wd14",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, len(TAGS)])],
        initializer=[
            numpy_helper.from_array(np.array(1 / 255, np.float32), "inv255"),
            numpy_helper.from_array(WEIGHTS, "weights"),
            numpy_helper.from_array(BIASES, "biases"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, folder / "model.onnx")
    write_tags_csv(folder / "selected_tags.csv")
    return folder

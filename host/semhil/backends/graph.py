"""What both code generators need to know about a device graph: the bytes each layer reads and
writes, its MACs and weight bytes, and the activation memory it cannot do with less than."""
from __future__ import annotations

import numpy as np


IN_PLACE_OPS = ("prelu", "energy_norm")  # float32, rewritten where they are
SIDE_OPS = ("local_dense",)  # read the tensor, write the side bytes after the code, leave the arena as it is
FLOAT_OUTPUT_OPS = ("gdn", "dequantize", "prelu", "energy_norm")


def elements(shape) -> int:
    return int(np.prod(shape))


def align4(n: int) -> int:
    return (n + 3) // 4 * 4


def output_shape(layer: dict) -> list[int]:
    return layer.get("out_shape") or layer.get("shape") or [layer.get("code_bytes", 0)]


def output_bytes(layer: dict) -> int:
    """Bytes a layer writes into the activation memory (the packer writes the caller's code buffer)."""
    if layer["op"] in ("pack", *SIDE_OPS):
        return 0
    return elements(output_shape(layer)) * (4 if layer["op"] in FLOAT_OUTPUT_OPS else 1)


def scratch_bytes(layer: dict) -> int:
    """K_CONV2D_SCRATCH_BYTES of device/kernels/kernels.h: two im2col columns of int16."""
    if layer["op"] != "conv2d":
        return 0
    return 2 * 2 * align4(layer["kernel"][0] * layer["kernel"][1] * layer["in_shape"][2])


def macs(layer: dict) -> int:
    if layer["op"] == "conv2d":
        return layer["kernel"][0] * layer["kernel"][1] * layer["in_shape"][2] * elements(layer["out_shape"])
    if layer["op"] == "gdn":
        return elements(layer["shape"]) * layer["shape"][2]
    if layer["op"] == "local_dense":
        return len(layer["weight"])
    return 0


def weight_bytes(layer: dict) -> int:
    if layer["op"] == "conv2d":
        return len(layer["weight"]) + len(layer["bias"]) + 2 * len(layer["out_shift"])  # as in the graph (NNoM's layout)
    return 4 * sum(len(layer.get(key, [])) for key in ("beta", "gamma", "alpha", "centres", "weight", "bias"))  # float32


def steps(graph: dict) -> list[tuple[dict, int, int, int]]:
    """Per layer: (layer, bytes read, bytes written, scratch bytes); in-place layers write nothing new."""
    read = elements(graph["input"]["shape"])
    out = []
    for layer in graph["layers"]:
        stays = layer["op"] in (*IN_PLACE_OPS, *SIDE_OPS)
        written = 0 if stays else output_bytes(layer)
        out.append((layer, read, written, scratch_bytes(layer)))
        read = read if stays else written
    return out


def activation_lower_bound(graph: dict) -> int:
    """The least activation memory any schedule of this graph needs: the largest input + output +
    scratch of one layer (both must be live while it runs)."""
    return max(read + written + scratch for _, read, written, scratch in steps(graph))


def total_macs(graph: dict) -> int:
    return sum(macs(layer) for layer in graph["layers"])

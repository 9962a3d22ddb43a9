"""The constant data of device-graph layers as C arrays, shared by the backends' code generators."""
from __future__ import annotations

import numpy as np

from ..errors import SemhilError
from .graph import align4

GDN_MAX_CHANNELS = 64  # K_GDN_MAX_CHANNELS in device/kernels/kernels.h


def ints(values) -> str:
    return ",".join(str(int(v)) for v in values)


def floats(values) -> str:
    return ",".join(float(np.float32(v)).hex() + "f" for v in values)


def packed_weights(layer: dict) -> np.ndarray:
    """The conv's weights in the standalone kernel's layout (K_CONV2D_WEIGHT_BYTES in kernels.h): rows
    padded to a multiple of 4, channels in pairs, 4 values of one channel then 4 of the other."""
    (kh, kw), ic, oc = layer["kernel"], layer["in_shape"][2], layer["out_shape"][2]
    k, k4 = kh * kw * ic, align4(kh * kw * ic)
    w = np.zeros(((oc + 1) // 2 * 2, k4), np.int8)
    w[:oc, :k] = np.asarray(layer["weight"], np.int8).reshape(oc, k)
    return w.reshape(-1, 2, k4 // 4, 4).transpose(0, 2, 1, 3).ravel()


def layer_data(layer: dict, name: str) -> list[str]:
    """The static const C data of one layer for the standalone kernels (device/kernels/kernels.h)."""
    op = layer["op"]
    if op == "conv2d":
        (ih, iw, ic), (oh, ow, oc) = layer["in_shape"], layer["out_shape"]
        (kh, kw), (sh, sw), (ph, pw) = layer["kernel"], layer["stride"], layer["padding"]
        return [f"static const int8_t {name}_w[] = {{{ints(packed_weights(layer))}}};",
                f"static const int8_t {name}_b[] = {{{ints(layer['bias'])}}};",
                f"static const uint8_t {name}_bias_shift[] = {{{ints(layer['bias_shift'])}}};",
                f"static const uint8_t {name}_out_shift[] = {{{ints(layer['out_shift'])}}};",
                f"static const k_conv2d_t {name} = {{{ih}, {iw}, {ic}, {oh}, {ow}, {oc}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, "
                f"{layer['act_min']}, {layer['act_max']}, {name}_w, {name}_b, {name}_bias_shift, {name}_out_shift}};"]
    if op == "maxpool":
        (ih, iw, c), (oh, ow, _) = layer["in_shape"], layer["out_shape"]
        (kh, kw), (sh, sw), (ph, pw) = layer["kernel"], layer["stride"], layer["padding"]
        return [f"static const k_maxpool_t {name} = {{{ih}, {iw}, {c}, {oh}, {ow}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}}};"]
    if op == "gdn":
        if layer["shape"][2] > GDN_MAX_CHANNELS:
            raise SemhilError(f"layer {layer['name']}: GDN over {layer['shape'][2]} channels, the kernel supports at most {GDN_MAX_CHANNELS}")
        return [f"static const float {name}_beta[] = {{{floats(layer['beta'])}}};",
                f"static const float {name}_gamma[] = {{{floats(layer['gamma'])}}};"]
    if op == "select_channels":
        return [f"static const uint16_t {name}_channels[] = {{{ints(layer['channels'])}}};"]
    if op == "local_dense":
        return [f"static const uint16_t {name}_channels[] = {{{ints(layer['channels'])}}};",
                f"static const float {name}_w[] = {{{floats(layer['weight'])}}};",
                f"static const float {name}_b[] = {{{floats(layer['bias'])}}};"]
    if op == "prelu":
        return [f"static const float {name}_alpha[] = {{{floats(layer['alpha'])}}};"]
    if op == "quantize":
        return [f"static const float {name}_centres[] = {{{floats(layer['centres'])}}};"]
    return []

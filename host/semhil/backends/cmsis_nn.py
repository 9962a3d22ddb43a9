"""C code for a device graph, cmsis-nn backend: a peer for measurements, not a product backend.

It is the standalone backend's row pipeline (standalone.py) with every conv an RP_CONV_WINDOW stage whose
output rows CMSIS-NN computes (device/peers/cmsis_nn/: arm_convolve_wrapper_s8 as TensorFlow Lite Micro
calls it, one output row per call). Max-pooling, the per-pixel float tail and the packer stay the
standalone kernels.

NNoM's arithmetic, acc = (bias << bias_shift) + (1 << s >> 1) + sum(x * w), y = sat8(acc >> s), is CMSIS-NN's
requantisation (double rounding, CMSIS 5.9.0) with the bias bias << bias_shift, the multiplier 2^(31 - s)
and the shift 0: (acc * 2^(31 - s) + 2^30) >> 31 = floor((acc + 2^(s - 1)) / 2^s); for s = 0 the multiplier
2^30 and the shift 1 give acc. So the peer's codes equal the simulator's bit for bit."""
from __future__ import annotations

import numpy as np

from ..errors import SemhilError
from .c_data import conv_struct, ints, layer_data as standalone_layer_data
from .graph import align4
from .standalone import Buffer, ConvPeer, Stage, generate as standalone_generate, plan as standalone_plan

BACKEND = "cmsis-nn"
NOT_READY = 3  # device_half_init's answer when a conv needs more CMSIS-NN buffer than planned


def requantisation(layer: dict) -> tuple[list[int], list[int]]:
    """CMSIS-NN's per-channel (multiplier, shift) that compute NNoM's rounded right shift by out_shift."""
    multipliers, shifts = [], []
    (kh, kw), ic = layer["kernel"], layer["in_shape"][2]
    for s, bias in zip(layer["out_shift"], bias32(layer)):
        if not 0 <= s <= 31:
            raise SemhilError(f"layer {layer['name']}: output shift {s}; the cmsis-nn backend takes shifts 0..31")
        if s == 0 and abs(bias) + 128 * 128 * kh * kw * ic >= 2**30:  # CMSIS-NN doubles the sum first (shift 1)
            raise SemhilError(f"layer {layer['name']}: output shift 0 with sums that may reach 2^30; CMSIS-NN's "
                              "requantisation would overflow")
        multipliers.append(1 << 30 if s == 0 else 1 << (31 - s))
        shifts.append(1 if s == 0 else 0)
    return multipliers, shifts


def bias32(layer: dict) -> list[int]:
    values = [int(b) << int(s) for b, s in zip(layer["bias"], layer["bias_shift"])]
    if any(not -2**31 <= v < 2**31 for v in values):
        raise SemhilError(f"layer {layer['name']}: bias << bias_shift does not fit CMSIS-NN's int32 bias")
    return values


def window_bytes(layer: dict) -> int:
    """The conv's input rows one output row covers, copied together for CMSIS-NN."""
    return align4(layer["kernel"][0] * layer["in_shape"][1] * layer["in_shape"][2])


def buffer_bytes(layer: dict) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size (CMSIS 5.9.0, no MVE) for one output row: 0 on the 1x1 fast
    path, else two im2col columns of int16. device_half_init checks it against the library's own figure."""
    (kh, kw), (sh, sw), pw, ic = layer["kernel"], layer["stride"], layer["padding"][1], layer["in_shape"][2]
    if (kh, kw, sh, sw, pw) == (1, 1, 1, 1, 0) and ic % 4 == 0:
        return 0
    return 2 * 2 * kh * kw * ic


def _buffers(stages: list[Stage]) -> list[Buffer]:
    convs = [s.layer for s in stages if s.layer["op"] == "conv2d"]
    if not convs:
        return []
    largest = max(convs, key=lambda layer: window_bytes(layer) + buffer_bytes(layer))
    return [Buffer("conv_scratch", "int16_t", (window_bytes(largest) + buffer_bytes(largest) + 1) // 2, largest["name"],
                   "a conv's input rows for CMSIS-NN, then arm_convolve_wrapper_s8's buffer")]


def _init(stages: list[Stage]) -> list[str]:
    checks = [f"    if (cmsis_nn_conv_row_buffer_bytes(&l{s.index + 1}) > l{s.index + 1}_cmsis.buffer_bytes)\n"
              f"        return {NOT_READY}; /* {s.layer['name']}: CMSIS-NN wants a larger buffer than semhil planned */"
              for s in stages if s.layer["op"] == "conv2d"]
    return [*checks, "    return 0;"]


def _conv_data(layer: dict, name: str) -> list[str]:
    """The conv's shape for the row pipeline (without the standalone kernel's weights: CMSIS-NN reads the
    OHWI ones), then CMSIS-NN's arrays and the conv's row function."""
    multipliers, shifts = requantisation(layer)
    weight = np.asarray(layer["weight"], np.int8).ravel()  # the graph's [out][kh][kw][in]: OHWI, as CMSIS-NN takes it
    window = window_bytes(layer)
    return [conv_struct(layer, name, "0", "0"),
            f"static const int8_t {name}_ohwi[] = {{{ints(weight)}}};",
            f"static const int32_t {name}_bias32[] = {{{ints(bias32(layer))}}};",
            f"static const int32_t {name}_multiplier[] = {{{ints(multipliers)}}};",
            f"static const int32_t {name}_shift[] = {{{ints(shifts)}}};",
            f"static const cmsis_nn_conv_t {name}_cmsis = {{{name}_ohwi, {name}_bias32, {name}_multiplier, {name}_shift, "
            f"{buffer_bytes(layer)}}};",
            f"static void {name}_row(const k_conv2d_t *layer, k_rows_t in, int oy, int8_t *out, int16_t *scratch)",
            "{",
            f"    cmsis_nn_conv_row(&{name}_cmsis, layer, in, oy, out, (int8_t *)scratch, scratch + {window // 2});",
            "}"]


def _layer_data(layer: dict, name: str) -> list[str]:
    return _conv_data(layer, name) if layer["op"] == "conv2d" else standalone_layer_data(layer, name)


PEER = ConvPeer(backend=BACKEND, include="cmsis_nn_row.h", layer_data=_layer_data, conv_row=lambda name: f"{name}_row",
                buffers=_buffers, init=_init)


def plan(graph: dict):
    """The row pipeline and buffers of the cmsis-nn firmware's model (standalone.plan with the peer's convs)."""
    return standalone_plan(graph, conv_sums=False, conv_buffers=_buffers)


def generate(graph: dict, bundle_hash: str) -> dict[str, str]:
    """model.h and model.c of the cmsis-nn backend."""
    return standalone_generate(graph, bundle_hash, PEER)

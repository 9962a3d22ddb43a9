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
    """The conv's biases and weights in the standalone kernel's layout (K_CONV2D_PAIR_BYTES in kernels.h):
    channels in pairs, each pair its two int32 starting sums (little-endian) then its rows padded to a
    multiple of 4, 4 values of one channel then 4 of the other."""
    (kh, kw), ic, oc = layer["kernel"], layer["in_shape"][2], layer["out_shape"][2]
    k, k4, pairs = kh * kw * ic, align4(kh * kw * ic), (oc + 1) // 2
    w = np.zeros((2 * pairs, k4), np.int8)
    w[:oc, :k] = np.asarray(layer["weight"], np.int8).reshape(oc, k)
    weights = w.reshape(pairs, 2, k4 // 4, 4).transpose(0, 2, 1, 3).reshape(pairs, 2 * k4)
    bias = np.zeros(2 * pairs, "<i4")
    bias[:oc] = bias_with_rounding(layer)
    return np.concatenate([bias.view(np.int8).reshape(pairs, 8), weights], axis=1).ravel()


def bias_with_rounding(layer: dict) -> list[int]:
    """(bias << bias_shift) + ((1 << out_shift) >> 1) per output channel: where a conv's int32 sums start."""
    out = []
    for b, bias_shift, out_shift in zip(layer["bias"], layer["bias_shift"], layer["out_shift"]):
        value = (int(b) << int(bias_shift)) + ((1 << int(out_shift)) >> 1)
        if not -2**31 <= value < 2**31:
            raise SemhilError(f"layer {layer['name']}: bias {b} << {bias_shift} does not fit in 32 bits")
        out.append(value)
    return out


def _ordered(x: np.float32) -> int:
    """float32 as an integer in the floats' order (NaN excluded)."""
    i = int(np.array(x, np.float32).view(np.int32))
    return i if i >= 0 else -(i & 0x7FFFFFFF)


def _from_ordered(i: int) -> np.float32:
    return np.array(i if i >= 0 else (-i) | -0x80000000, np.int32).view(np.float32)[()]


def quantizer_thresholds(centres) -> tuple[list[float], list[int], float]:
    """(thresholds, symbol_at, limit) of k_quantize_thresholds_f32: the nearest-centre search of the simulator
    (argmin of |x - c| in float32, the first centre winning a tie) as a count of thresholds <= x, exact for
    |x| <= limit. Between two neighbouring centres the float32 distances are monotone in x, so the first x
    where the upper one wins is found by bisection over the floats; a centre further away is at least the
    smallest gap g further, which rounding cannot undo while ulp(|x| + max|c|) < g / 4."""
    c = np.asarray(centres, np.float32)
    order = sorted(range(len(c)), key=lambda k: (float(c[k]), k))
    kept = [k for i, k in enumerate(order) if i == 0 or c[k] != c[order[i - 1]]]  # equal centres: the first wins
    thresholds = []
    for lower, upper in zip(kept, kept[1:]):
        a, b = c[lower], c[upper]

        def upper_wins(x: np.float32) -> bool:
            da, db = np.abs(np.float32(x - a)), np.abs(np.float32(x - b))
            return bool(db < da or (db == da and upper < lower))

        lo, hi = _ordered(a), _ordered(b)  # upper_wins(b) holds, upper_wins(a) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if upper_wins(_from_ordered(mid)) else (mid, hi)
        thresholds.append(float(_from_ordered(hi)))
    gap = min((float(c[b]) - float(c[a]) for a, b in zip(kept, kept[1:])), default=np.inf)
    span = float(np.max(np.abs(c)))
    limit = np.float32(2.0 ** 126)
    while limit > 0 and np.spacing(np.float32(limit + span)) >= gap / 4:
        limit = np.float32(limit / 2) if limit > 2.0 ** -20 else np.float32(0)
    return thresholds, kept, float(limit)


def conv_struct(layer: dict, name: str, weight: str, out_shift: str) -> str:
    """The k_conv2d_t of a conv, pointing at the named C arrays."""
    (ih, iw, ic), (oh, ow, oc) = layer["in_shape"], layer["out_shape"]
    (kh, kw), (sh, sw), (ph, pw) = layer["kernel"], layer["stride"], layer["padding"]
    return (f"static const k_conv2d_t {name} = {{{ih}, {iw}, {ic}, {oh}, {ow}, {oc}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, "
            f"{layer['act_min']}, {layer['act_max']}, {weight}, {out_shift}}};")


def layer_data(layer: dict, name: str) -> list[str]:
    """The static const C data of one layer for the standalone kernels (device/kernels/kernels.h)."""
    op = layer["op"]
    if op == "conv2d":
        return [f"static const int8_t {name}_w[] __attribute__((aligned(4))) = {{{ints(packed_weights(layer))}}};",
                f"static const uint8_t {name}_out_shift[] = {{{ints(layer['out_shift'])}}};",
                conv_struct(layer, name, f"{name}_w", f"{name}_out_shift")]
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
        thresholds, symbol_at, limit = quantizer_thresholds(layer["centres"])
        depth = max(1, (len(thresholds)).bit_length())  # 2^depth - 1 >= len(thresholds)
        padded = thresholds + [float(np.finfo(np.float32).max)] * (2 ** depth - 1 - len(thresholds))  # above any |x| <= limit
        symbols = symbol_at + [symbol_at[-1]] * (2 ** depth - len(symbol_at))
        return [f"static const float {name}_centres[] = {{{floats(layer['centres'])}}};",
                f"static const float {name}_thresholds[] = {{{floats(padded)}}};",
                f"static const uint8_t {name}_symbol_at[] = {{{ints(symbols)}}};",
                f"static const k_quantizer_t {name} = {{{name}_centres, {len(layer['centres'])}, {name}_thresholds, "
                f"{name}_symbol_at, {depth}, {floats([limit])}}};"]
    return []

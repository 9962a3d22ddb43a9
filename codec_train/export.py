"""Export the device half (task stem + SQ encoder + packer) to an int8 device graph.

Integer layers follow NNoM's arithmetic (power-of-two scales, value = q * 2^-dec):
    acc = (bias << bias_shift) + round + sum(x * w);  y = sat8(acc >> out_shift)
    bias_shift = in_dec + w_dec - b_dec,  out_shift = in_dec + w_dec - out_dec,
    round = (1 << out_shift) >> 1.   Weights [out][kh][kw][in], tensors HWC.
GDN, PReLU, energy normalisation and the quantizer run in float32 on the dequantized encoder output; the simulator and
the C kernels evaluate them in the same order with the same roundings (no FMA), so codes match
bit for bit. The graph is plain JSON; floats are float32 values.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from semhil.errors import SemhilError

from .codes import code_bytes
from .crop import crop_box
from .data import to_float
from .models import ENERGY_EPS

GRAPH_FORMAT = 1
INPUT_DEC = 7  # the device takes pixel >> 1 as int8, i.e. pixel / 256


def dec_bits(max_abs: float) -> int:
    """NNoM's fractional bits for a tensor whose largest magnitude is max_abs."""
    return 7 if max_abs <= 0 else 7 - math.ceil(math.log2(max_abs))


def activation_dec(values: np.ndarray, max_dec: int) -> int:
    """Fractional bits for an activation: of NNoM's max-based choice and up to 3 more bits (which
    saturate the rare largest values), the one with the least quantization error on calibration data."""
    base = min(dec_bits(float(np.abs(values).max())), max_dec)
    candidates = range(base, min(base + 3, max_dec) + 1)
    error = lambda d: float(np.mean((quantize(values, d).astype(np.float32) * 2.0 ** -d - values) ** 2))  # noqa: E731
    return min(candidates, key=error)


def quantize(values: np.ndarray, dec: int) -> np.ndarray:
    return np.clip(np.round(values * 2.0 ** dec), -128, 127).astype(np.int8)


def _f32(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float32).ravel()]


def _conv_layer(name: str, conv: nn.Conv2d, relu: bool, in_shape, in_dec: int, out_float: torch.Tensor) -> dict:
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise SemhilError(f"cannot export layer {name}: only Conv2d with groups=1, dilation=1 and numeric zero padding is supported")
    w = conv.weight.detach().numpy().transpose(0, 2, 3, 1)  # [out][kh][kw][in]
    b = conv.bias.detach().numpy() if conv.bias is not None else np.zeros(conv.out_channels, np.float32)
    w_dec = dec_bits(float(np.abs(w).max()))
    b_dec = min(dec_bits(float(np.abs(b).max())), in_dec + w_dec)
    out_dec = activation_dec(out_float.numpy(), in_dec + w_dec)
    h, wd = out_float.shape[2:]
    return {
        "op": "conv2d", "name": name, "in_shape": list(in_shape), "out_shape": [h, wd, conv.out_channels],
        "kernel": list(conv.kernel_size), "stride": list(conv.stride), "padding": list(conv.padding),
        "weight": quantize(w, w_dec).ravel().tolist(), "bias": quantize(b, b_dec).tolist(),
        "in_dec": in_dec, "w_dec": w_dec, "b_dec": b_dec, "out_dec": out_dec,
        "bias_shift": in_dec + w_dec - b_dec, "out_shift": in_dec + w_dec - out_dec, "relu": relu,
    }


def _stem_convs(stem: nn.Sequential) -> list[tuple[str, nn.Conv2d, bool]]:
    """Pairs each Conv2d of the stem with whether a ReLU follows it."""
    modules = list(stem.named_children())
    out = []
    for i, (name, m) in enumerate(modules):
        if isinstance(m, nn.Conv2d):
            relu = i + 1 < len(modules) and isinstance(modules[i + 1][1], nn.ReLU)
            out.append((f"stem.{name}", m, relu))
        elif not (isinstance(m, nn.ReLU) and i > 0 and isinstance(modules[i - 1][1], nn.Conv2d)):
            raise SemhilError(f"cannot export layer stem.{name} ({m.__class__.__name__}): supported stem layers are Conv2d, each optionally followed by ReLU")
    return out


@torch.no_grad()
def export_device_graph(task, codec, calibration_images: np.ndarray) -> dict:
    """Quantize the device half, calibrating activation scales on `calibration_images` (uint8 NHWC)."""
    x = to_float(calibration_images)
    shape, dec = list(calibration_images.shape[1:]), INPUT_DEC
    layers = []
    for name, conv, relu in _stem_convs(task.stem):
        x = conv(x)
        x = torch.relu(x) if relu else x
        layers.append(_conv_layer(name, conv, relu, shape, dec, x))
        shape, dec = layers[-1]["out_shape"], layers[-1]["out_dec"]
    enc = codec.encoder
    x = enc.conv(x)
    layers.append(_conv_layer("encoder.conv", enc.conv, False, shape, dec, x))
    code_shape, dec = layers[-1]["out_shape"], layers[-1]["out_dec"]
    centres = enc.quantizer.centres.detach().numpy()
    bits = enc.quantizer.bits
    sent_shape = list(codec.shape.sent_shape)
    n_symbols = int(np.prod(sent_shape))
    crop = []
    if codec.shape.crop_ratio < 1:
        top, left, h, w = crop_box(code_shape[0], code_shape[1], codec.shape.crop_ratio)
        crop = [{"op": "crop", "name": "crop", "in_shape": code_shape, "out_shape": sent_shape, "top": top, "left": left}]
    layers += [
        {"op": "gdn", "name": "encoder.gdn", "shape": code_shape, "in_dec": dec,
         "beta": _f32(enc.gdn.beta().numpy()), "gamma": _f32(enc.gdn.gamma().numpy())},
        {"op": "prelu", "name": "encoder.prelu", "shape": code_shape, "alpha": _f32(enc.prelu.weight.numpy())},
        {"op": "energy_norm", "name": "encoder.energy_norm", "shape": code_shape, "eps": _f32([ENERGY_EPS])[0]},
        {"op": "quantize", "name": "encoder.quantizer", "shape": code_shape, "centres": _f32(centres)},
        *crop,
        {"op": "pack", "name": "packer", "bits": bits, "n_symbols": n_symbols, "code_bytes": code_bytes(n_symbols, bits)},
    ]
    return {
        "format": GRAPH_FORMAT,
        "input": {"shape": list(calibration_images.shape[1:]), "dec": INPUT_DEC},
        "layers": layers,
        "code_shape": sent_shape, "full_code_shape": code_shape, "bits": bits, "code_bytes": code_bytes(n_symbols, bits),
    }

"""Export a codec's device half (codec.device_layers, then the packer) to an int8 device graph.

Integer layers follow NNoM's arithmetic (power-of-two scales, value = q * 2^-dec):
    acc = (bias << bias_shift) + round + sum(x * w);  y = sat8(acc >> out_shift)
    bias_shift = in_dec + w_dec - b_dec,  out_shift = in_dec + w_dec - out_dec,
    round = (1 << out_shift) >> 1.   Weights [out][kh][kw][in], tensors HWC.
Weight (and so bias and shift) formats are per output channel where the channels' ranges differ
(NNoM's NNOM_QTYPE_PER_AXIS), else per tensor. BatchNorm is folded into the conv before it; ReLU
and ReLU6 clamp the int8 output; max-pooling takes the largest int8 value of each window.
GDN, PReLU, energy normalisation and the quantizer run in float32 on the dequantized encoder
output; the simulator and the C kernels evaluate them in the same order with the same roundings
(no FMA), so codes match bit for bit. The graph is plain JSON; floats are float32 values.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from semhil.backends.graph import output_shape
from semhil.errors import SemhilError

from .codes import code_bytes
from .crop import crop_box
from .data import to_float
from .qformat import activation_dec, conv_formats, quantize
from .simulate import GRAPH_FORMAT

INPUT_DEC = 7  # the device takes pixel >> 1 as int8, i.e. pixel / 256
ACTIVATIONS = {nn.ReLU: "relu", nn.ReLU6: "relu6"}
SUPPORTED_STEM = "Conv2d (groups=1, dilation=1, zero padding), BatchNorm2d after a Conv2d, ReLU, ReLU6, MaxPool2d"


def _f32(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float32).ravel()]


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    """The conv's (weight [out][in][kh][kw], bias) with the BatchNorm's inference-time affine map folded in."""
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
    if bn is not None:
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        w = w * scale[:, None, None, None]
        b = (b - bn.running_mean.double()) * scale + bn.bias.detach().double()
    return w.float().numpy(), b.float().numpy()


def _conv_layer(name: str, conv: nn.Conv2d, w: np.ndarray, b: np.ndarray, act: str, in_shape, in_dec: int,
                out_float: np.ndarray, out_dec: int | None = None) -> dict:
    """One int8 conv; out_float (N, H, W, C) is the float output (after the activation) on calibration
    data, which calibrates the output format unless training fixed it (out_dec)."""
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise SemhilError(f"cannot export layer {name}: supported are {SUPPORTED_STEM}")
    w = w.transpose(0, 2, 3, 1)  # [out][kh][kw][in]
    w_dec, b_dec, per_channel = conv_formats(w, b, in_dec)
    if out_dec is None:
        out_dec = activation_dec(out_float, in_dec + int(w_dec.min()))
    h, wd, c = out_float.shape[1:]
    act_max = min(127, math.floor(6 * 2.0 ** out_dec)) if act == "relu6" else 127
    return {
        "op": "conv2d", "name": name, "in_shape": list(in_shape), "out_shape": [h, wd, c],
        "kernel": list(conv.kernel_size), "stride": list(conv.stride), "padding": list(conv.padding),
        "weight": quantize(w, w_dec[:, None, None, None]).ravel().tolist(), "bias": quantize(b, b_dec).tolist(),
        "per_channel": per_channel, "in_dec": in_dec, "w_dec": w_dec.tolist(), "b_dec": b_dec.tolist(), "out_dec": out_dec,
        "bias_shift": (in_dec + w_dec - b_dec).tolist(), "out_shift": (in_dec + w_dec - out_dec).tolist(),
        "act": act, "act_min": -128 if act == "none" else 0, "act_max": act_max,
    }


def _leaves(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    children = list(module.named_children())
    if not children:
        return [(prefix, module)]
    return [leaf for name, child in children for leaf in _leaves(child, f"{prefix}.{name}")]


def _stem_stages(stem: nn.Module) -> list[tuple[str, nn.Module, nn.BatchNorm2d | None, str]]:
    """The stem as (name, Conv2d or MaxPool2d, folded BatchNorm or None, activation) stages."""
    stages = []
    for name, m in _leaves(stem, "stem"):
        previous = stages[-1] if stages else None
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            stages.append([name, m, None, "none"])
        elif isinstance(m, nn.BatchNorm2d) and previous and isinstance(previous[1], nn.Conv2d) and previous[2] is None \
                and previous[3] == "none":
            previous[2] = m
        elif type(m) in ACTIVATIONS and previous and isinstance(previous[1], nn.Conv2d) and previous[3] == "none":
            previous[3] = ACTIVATIONS[type(m)]
        elif isinstance(m, nn.Identity):
            continue
        else:
            raise SemhilError(f"cannot export layer {name} ({m.__class__.__name__}) here: supported stem layers are {SUPPORTED_STEM}")
    return [tuple(s) for s in stages]


def _maxpool_layer(name: str, pool: nn.MaxPool2d, in_shape, dec: int, out_shape) -> dict:
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    if pool.dilation not in (1, (1, 1)) or pool.ceil_mode:
        raise SemhilError(f"cannot export layer {name}: only MaxPool2d with dilation=1 and ceil_mode=False is supported")
    return {"op": "maxpool", "name": name, "in_shape": list(in_shape), "out_shape": list(out_shape), "dec": dec,
            "kernel": pair(pool.kernel_size), "stride": pair(pool.stride), "padding": pair(pool.padding)}


def _nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def export_stem(task, calibration_images: np.ndarray, out_dec: int | None = None) -> tuple[list[dict], torch.Tensor]:
    """The stem's int8 layers and its float output on `calibration_images` (uint8 NHWC); out_dec,
    when given, is the format of the stem's last conv (the one training fixed)."""
    x = to_float(calibration_images)
    shape, dec = list(calibration_images.shape[1:]), INPUT_DEC
    stages = _stem_stages(task.stem)
    last_conv = max(i for i, stage in enumerate(stages) if isinstance(stage[1], nn.Conv2d))
    layers = []
    for i, (name, module, bn, act) in enumerate(stages):
        if isinstance(module, nn.MaxPool2d):
            x = module(x)
            layers.append(_maxpool_layer(name, module, shape, dec, _nhwc(x).shape[1:]))
        else:
            w, b = fold_batchnorm(module, bn)
            x = nn.functional.conv2d(x, torch.from_numpy(w), torch.from_numpy(b), module.stride, module.padding)
            x = torch.relu(x) if act == "relu" else torch.clamp(x, 0, 6) if act == "relu6" else x
            layers.append(_conv_layer(name, module, w, b, act, shape, dec, _nhwc(x), out_dec if i == last_conv else None))
        shape, dec = layers[-1]["out_shape"], layers[-1].get("out_dec", dec)
    return layers, x


def fixed_dec(fake_quant) -> int | None:
    """The int8 format training fixed for a FakeQuant, or None (calibrate it)."""
    return int(fake_quant.dec) if bool(fake_quant.enabled) else None


@torch.no_grad()
def conv_layer_after(layers: list[dict], name: str, conv: nn.Conv2d, feature: torch.Tensor, out_dec: int | None) -> dict:
    """An int8 conv (no activation) reading the output of `layers`, whose float output is `feature` (NCHW)."""
    in_dec = next(layer["out_dec"] for layer in reversed(layers) if layer["op"] == "conv2d")
    return _conv_layer(name, conv, *fold_batchnorm(conv, None), "none", layers[-1]["out_shape"], in_dec, _nhwc(conv(feature)), out_dec)


def float_tail(conv: dict, centres: torch.Tensor, gdn=None, prelu=None, energy_eps: float | None = None, prefix: str = "encoder") -> list[dict]:
    """The float32 ops after an int8 conv, ending in the quantizer: GDN (or a plain dequantization),
    then optionally PReLU and energy normalisation."""
    shape = conv["out_shape"]
    layers = [{"op": "gdn", "name": f"{prefix}.gdn", "shape": shape, "in_dec": conv["out_dec"],
               "beta": _f32(gdn.beta().numpy()), "gamma": _f32(gdn.gamma().numpy())} if gdn is not None else
              {"op": "dequantize", "name": f"{prefix}.dequantize", "shape": shape, "in_dec": conv["out_dec"]}]
    if prelu is not None:
        layers.append({"op": "prelu", "name": f"{prefix}.prelu", "shape": shape, "alpha": _f32(prelu.weight.numpy())})
    if energy_eps is not None:
        layers.append({"op": "energy_norm", "name": f"{prefix}.energy_norm", "shape": shape, "eps": _f32([energy_eps])[0]})
    return [*layers, {"op": "quantize", "name": f"{prefix}.quantizer", "shape": shape, "centres": _f32(centres.numpy())}]


def crop_layer(code_shape: list[int], ratio: float) -> dict:
    top, left, h, w = crop_box(code_shape[0], code_shape[1], ratio)
    return {"op": "crop", "name": "crop", "in_shape": list(code_shape), "out_shape": [h, w, code_shape[2]], "top": top, "left": left}


@torch.no_grad()
def export_device_graph(task, codec, calibration_images: np.ndarray) -> dict:
    """Quantize the device half (codec.device_layers), calibrating activation formats on
    `calibration_images` (uint8 NHWC) where training did not fix them, and add the packer."""
    layers = codec.device_layers(task, calibration_images)
    sent_shape, bits = list(codec.shape.sent_shape), codec.shape.bits
    n_symbols = int(np.prod(sent_shape))
    body = [layer for layer in layers if layer["op"] != "local_dense"]  # a local head leaves the tensor as it is
    if body and list(output_shape(body[-1])) != sent_shape:
        raise SemhilError(f"the device half ends in {output_shape(body[-1])}, the codec sends {sent_shape}")
    graph_input = {"shape": list(calibration_images.shape[1:]), "dec": INPUT_DEC}
    if codec.sends_pixels:
        graph_input["raw_pixels"] = True
    pack = {"op": "pack", "name": "packer", "bits": bits, "n_symbols": n_symbols, "code_bytes": code_bytes(n_symbols, bits)}
    return {"format": GRAPH_FORMAT, "input": graph_input, "layers": [*layers, pack],
            "code_shape": sent_shape, "bits": bits, "code_bytes": code_bytes(n_symbols, bits), "side_bytes": codec.side_bytes}


@torch.no_grad()
def round_stem_to_int8(task, stem_layers: list[dict]) -> None:
    """Sets the stem's convs (BatchNorm folded in) to the int8 weights and biases of stem_layers, so
    that the float stem computes what the board computes, up to the output rounding (FakeQuant)."""
    convs = [stage for stage in _stem_stages(task.stem) if isinstance(stage[1], nn.Conv2d)]
    for (_, conv, bn, _), layer in zip(convs, (layer for layer in stem_layers if layer["op"] == "conv2d"), strict=True):
        oc, kh, kw, ic = conv.out_channels, *conv.kernel_size, conv.in_channels
        w = np.asarray(layer["weight"], np.float32).reshape(oc, kh, kw, ic) * np.exp2(-np.asarray(layer["w_dec"]))[:, None, None, None]
        b = np.asarray(layer["bias"], np.float32) * np.exp2(-np.asarray(layer["b_dec"], np.float32))
        conv.weight.copy_(torch.from_numpy(w.transpose(0, 3, 1, 2)))
        if bn is not None:  # the bias moves to the BatchNorm, which becomes the identity
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(b) - (conv.bias if conv.bias is not None else 0))
        elif conv.bias is not None:
            conv.bias.copy_(torch.from_numpy(b))

"""NNoM's power-of-two formats (value = q * 2^-dec, q int8), shared by the exporter and by training,
which runs the device half in these formats so that the float model is what the board computes."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def dec_bits(max_abs: float) -> int:
    """NNoM's fractional bits for a tensor whose largest magnitude is max_abs."""
    return 7 if max_abs <= 0 else 7 - math.ceil(math.log2(max_abs))


def quantize(values: np.ndarray, dec) -> np.ndarray:
    return np.clip(np.round(values * np.exp2(dec)), -128, 127).astype(np.int8)


def activation_dec(values: np.ndarray, max_dec: int) -> int:
    """Fractional bits for an activation: of NNoM's max-based choice and up to 3 more bits (which
    saturate the rare largest values), the one with the least squared error on calibration data."""
    base = min(dec_bits(float(np.abs(values).max())), max_dec)
    error = lambda d: float(np.mean((quantize(values, d).astype(np.float32) * 2.0 ** -d - values) ** 2))  # noqa: E731
    return min(range(base, min(base + 3, max_dec) + 1), key=error)


def conv_formats(w: np.ndarray, b: np.ndarray, in_dec: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(w_dec per output channel, b_dec per output channel, per_channel) of a conv with weights
    w [out][...] and bias b: per channel where the channels' ranges differ (NNOM_QTYPE_PER_AXIS),
    else one format for the whole tensor (NNOM_QTYPE_PER_TENSOR reads only the first shift)."""
    w_dec = np.array([dec_bits(float(np.abs(wc).max())) for wc in w.reshape(len(w), -1)])
    per_channel = bool(np.any(w_dec != w_dec[0]))
    if per_channel:
        b_dec = np.minimum([dec_bits(abs(float(v))) for v in b], in_dec + w_dec)
    else:
        b_dec = np.full_like(w_dec, min(dec_bits(float(np.abs(b).max())), in_dec + int(w_dec[0])))
    return w_dec, b_dec, per_channel


def round_to_format(t: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
    """t rounded to q * 2^-dec with q int8, half up like the integer kernels' (acc + half) >> shift."""
    scale = torch.exp2(dec.to(t.dtype))
    return torch.clamp(torch.floor(t * scale + 0.5), -128, 127) / scale


class FakeQuant(nn.Module):
    """Rounds to an int8 format in the forward pass, identity gradient (straight-through).
    Off until `set_format` is called; the format is saved with the model."""

    def __init__(self):
        super().__init__()
        self.register_buffer("dec", torch.tensor(0))
        self.register_buffer("enabled", torch.tensor(False))

    def set_format(self, dec: int) -> None:
        self.dec.fill_(dec)
        self.enabled.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.enabled):
            return x
        return x + (round_to_format(x, self.dec) - x).detach()


def int8_conv_params(conv: nn.Conv2d, in_dec: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv's weight and bias rounded to the formats the exporter will give them (round half to
    even like numpy), with an identity gradient."""
    w = conv.weight
    b = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, device=w.device)
    w_dec, b_dec, _ = conv_formats(w.detach().cpu().numpy(), b.detach().cpu().numpy(), in_dec)
    w_scale = torch.exp2(torch.tensor(w_dec, dtype=w.dtype, device=w.device)).view(-1, *[1] * (w.dim() - 1))
    b_scale = torch.exp2(torch.tensor(b_dec, dtype=w.dtype, device=w.device))
    wq = torch.clamp(torch.round(w * w_scale), -128, 127) / w_scale
    bq = torch.clamp(torch.round(b * b_scale), -128, 127) / b_scale
    return w + (wq - w).detach(), b + (bq - b).detach()


@torch.no_grad()
def fix_conv_format(input_quant: FakeQuant, conv: nn.Conv2d, conv_quant: FakeQuant, features: torch.Tensor) -> None:
    """Fixes the int8 format of a conv's output, calibrated on `features` (its input); from then on the
    FakeQuant rounds the output, and int8_conv_params the weights."""
    out = conv(input_quant(features)).permute(0, 2, 3, 1).cpu().numpy()
    in_dec = int(input_quant.dec)
    w_dec, _, _ = conv_formats(conv.weight.detach().cpu().numpy(), conv.bias.detach().cpu().numpy(), in_dec)
    conv_quant.set_format(activation_dec(out, in_dec + int(w_dec.min())))


def int8_conv(input_quant: FakeQuant, conv: nn.Conv2d, conv_quant: FakeQuant, x: torch.Tensor) -> torch.Tensor:
    """A conv as the board runs it once training fixed its formats: input rounded to its int8 format,
    weights and bias to theirs, output to its own (each FakeQuant is the identity until then)."""
    x = input_quant(x)
    if bool(conv_quant.enabled):
        weight, bias = int8_conv_params(conv, int(input_quant.dec))
        return conv_quant(nn.functional.conv2d(x, weight, bias, conv.stride, conv.padding))
    return conv_quant(conv(x))

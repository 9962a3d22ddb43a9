"""AECNN (Li et al., 2022: attention-based feature compression), on the task stem's feature: a k4 s4
conv, channel attention that learns which of its channels matter, the most important quarter of the
channels kept, uniform quantization, and a light decoder before the frozen task tail.

The abstract leaves most choices open; assumed here:
- the attention (squeeze-and-excitation) is used in training only, to rank the channels: the board
  sends a fixed set, the top quarter by mean attention over the training set;
- quantization is uniform, 16 levels (4 bits) between the 0.1 % and 99.9 % quantiles of the kept
  channels;
- entropy coding does not go on the wire: a variable-length stream needs framing that a single
  flipped bit destroys, and the harness sends fixed-length codes. Its gain is reported instead, as
  the Huffman-coded size of the test codes (metrics.json: entropy_coded_bytes_per_image, given for every codec);
- training is step by step, as in the paper: first with the soft attention and no quantization, then
  with the hard selection and the quantizer; both on a clean channel (AECNN assumes a reliable link).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import to_float
from ..export import conv_layer_after, export_stem, fixed_dec, float_tail
from ..layers import SoftQuantizer, upsampling_decoder
from ..losses import distillation
from ..models import Codec, WireShape, nearest_zero
from ..phases import two_step_training
from ..qformat import FakeQuant, int8_conv
from ..semantic_train import codec_shape

KEPT_SHARE = 0.25
BITS = 4


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: global pool -> MLP -> sigmoid, one weight per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels, max(channels // 4, 2)), nn.ReLU(), nn.Linear(max(channels // 4, 2), channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: NHWC -> (N, C) weights in (0, 1)."""
        return torch.sigmoid(self.mlp(x.mean(dim=(1, 2))))


class AECNN(Codec):
    def __init__(self, feature_channels: int, feature_size: tuple[int, int], width: int):
        super().__init__()
        h, w = feature_size[0] // 4, feature_size[1] // 4
        self.channels = feature_channels
        kept = max(1, round(KEPT_SHARE * feature_channels))
        self.shape = WireShape((h, w, kept), BITS)
        self.input_quant, self.conv_quant = FakeQuant(), FakeQuant()
        self.conv = nn.Conv2d(feature_channels, feature_channels, 4, stride=4)
        self.attention = ChannelAttention(feature_channels)
        self.register_buffer("kept", torch.arange(kept))  # the channels sent, chosen after the first step
        self.quantizer = SoftQuantizer(BITS)
        self.quantizer.centres.requires_grad_(False)
        self.decoder = upsampling_decoder(feature_channels, width, feature_channels)

    def encode(self, feature: torch.Tensor) -> torch.Tensor:
        """The conv's output (NHWC) as the board computes it."""
        return int8_conv(self.input_quant, self.conv, self.conv_quant, feature).permute(0, 2, 3, 1)

    def decode_values(self, values: torch.Tensor) -> torch.Tensor:
        """Values of the kept channels (NHWC) -> the restored stem feature; the dropped channels are zeros."""
        full = values.new_zeros(*values.shape[:3], self.channels)
        full[..., self.kept] = values
        return self.decoder(full.permute(0, 3, 1, 2))

    def place_levels(self, features: torch.Tensor) -> None:
        """Keeps the channels of highest mean attention and spreads the quantizer's levels over their range."""
        x = torch.cat([self.encode(features[i:i + 256]) for i in range(0, len(features), 256)])
        attention = torch.cat([self.attention(x[i:i + 256]) for i in range(0, len(x), 256)]).mean(0)
        self.kept.copy_(torch.sort(torch.topk(attention, len(self.kept)).indices).values)
        low, high = torch.quantile(x[..., self.kept].flatten()[:200_000], torch.tensor([0.001, 0.999]))
        self.quantizer.centres.copy_(torch.linspace(float(low), float(high), 2 ** BITS))

    @property
    def zero_symbol(self) -> int:
        return nearest_zero(self.quantizer.centres)

    def float_symbols(self, task, images: np.ndarray) -> torch.Tensor:
        return self.quantizer(self.encode(task.stem(to_float(images)))[..., self.kept])[1]

    def logits(self, task, symbols: torch.Tensor, ber: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return task.tail(self.decode_values(self.quantizer.centres[symbols.long()]))

    def device_layers(self, task, calibration_images: np.ndarray) -> list[dict]:
        """Stem, conv, the kept channels, the uniform quantizer on their dequantized values."""
        layers, feature = export_stem(task, calibration_images, fixed_dec(self.input_quant))
        conv = conv_layer_after(layers, "encoder.conv", self.conv, feature, fixed_dec(self.conv_quant))
        h, w, c = conv["out_shape"]
        kept = {"op": "select_channels", "name": "encoder.kept_channels", "in_shape": [h, w, c],
                "out_shape": list(self.shape.sent_shape), "channels": [int(i) for i in self.kept]}
        return [*layers, conv, kept, *float_tail({**conv, "out_shape": kept["out_shape"]}, centres=self.quantizer.centres)]


def build(config, task, image_shape, n_classes: int) -> AECNN:
    shape = codec_shape(config, task, image_shape)
    return AECNN(shape.feature_channels, shape.feature_size, shape.decoder_channels)


def task_loss(task, codec: AECNN, restored, feature, teacher, labels, config) -> torch.Tensor:
    logits = task.tail(restored)
    return (config.beta_cls * F.cross_entropy(logits, labels) + config.kd_weight * distillation(logits, teacher)
            + config.mse_weight * F.mse_loss(restored, feature))


def loss(task, codec: AECNN, feature, teacher, labels, config, quantized: bool) -> torch.Tensor:
    """Step 1 (not quantized): every channel, weighted by its attention, reconstructing the feature.
    Step 2: the kept channels, quantized, with the task's and the logits' losses too."""
    x = codec.encode(feature)
    if not quantized:
        return config.mse_weight * F.mse_loss(codec.decoder((x * codec.attention(x)[:, None, None, :]).permute(0, 3, 1, 2)), feature)
    restored = codec.decode_values(codec.quantizer(x[..., codec.kept])[0])
    logits = task.tail(restored)
    return (config.beta_cls * F.cross_entropy(logits, labels) + config.kd_weight * distillation(logits, teacher)
            + config.mse_weight * F.mse_loss(restored, feature))


train = two_step_training("AECNN", loss)  # step by step: with the attention, then the kept channels quantized

"""DeepCOD (Yao et al., SenSys 2020), on the task stem's feature: a one-layer conv encoder kept
near-orthogonal by a regulariser, soft-to-hard quantization to learned centres, and a decoder with a
self-attention block (at half the feature's size, where it is 16 times cheaper), trained by distillation from the original feature and the task CNN's logits.

Assumptions where the paper's setting differs from ours: the encoder is a k4 s4 conv to half the
stem's channels with 3-bit symbols (the budget of SemanticNN without crop), and training sees a clean
channel, as DeepCOD was designed for: it knows nothing of bit errors, and its decoder is not told the BER.
With a crop ratio below 1 only the centred crop of the code map is sent (crop.py, as SemanticNN's partial
offloading), in training too, and the decoder restores the full map by reflection padding.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import to_float
from ..crop import centre_crop, reflect_restore
from ..export import conv_layer_after, crop_layer, export_stem, fixed_dec, float_tail
from ..layers import SoftQuantizer, upsampling_decoder
from ..losses import distillation
from ..models import Codec, CodecShape, nearest_zero
from ..phases import two_step_training
from ..qformat import FakeQuant, int8_conv
from ..semantic_train import codec_shape

ORTHOGONAL_WEIGHT = 0.1
FEATURE_WEIGHT = 10.0  # distillation from the original feature (MSE), as SemanticNN's anchor


class SelfAttention(nn.Module):
    """Non-local attention over positions (SAGAN): x + gamma * V softmax(Q^T K); gamma starts at 0."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 8, 1)
        self.query, self.key = nn.Conv2d(channels, inner, 1), nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.query(x).flatten(2), self.key(x).flatten(2), self.value(x).flatten(2)
        attention = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (n, hw, hw)
        return x + self.gamma * (v @ attention.transpose(1, 2)).view(n, c, h, w)


class DeepCOD(Codec):
    missing_fill = "reflect"

    def __init__(self, shape: CodecShape):
        super().__init__()
        self.shape = shape
        c, code, width = shape.feature_channels, shape.code_channels, shape.decoder_channels
        self.input_quant, self.conv_quant = FakeQuant(), FakeQuant()
        self.conv = nn.Conv2d(c, code, 4, stride=4)
        self.quantizer = SoftQuantizer(shape.bits)
        self.decoder = upsampling_decoder(code, width, c, after_first=SelfAttention(width))

    def analysis(self, feature: torch.Tensor) -> torch.Tensor:
        """The encoder conv's output (NHWC), in the int8 formats once training fixed them."""
        return int8_conv(self.input_quant, self.conv, self.conv_quant, feature).permute(0, 2, 3, 1)

    @property
    def zero_symbol(self) -> int:
        """The symbol of the centre nearest 0."""
        return nearest_zero(self.quantizer.centres)

    def crop(self, code: torch.Tensor) -> torch.Tensor:
        """The whole code map (N, H, W, C) -> what is sent."""
        return centre_crop(code, self.shape.crop_ratio) if self.shape.crop_ratio < 1 else code

    def decode_values(self, values: torch.Tensor) -> torch.Tensor:
        """Values (N, h, w, C) as sent -> the restored stem feature; a crop is restored to the full code map first."""
        return self.decoder(reflect_restore(values.permute(0, 3, 1, 2), *self.shape.code_size))

    def place_levels(self, features: torch.Tensor) -> None:
        self.quantizer.init_from(self.analysis(features[:512]))

    def orthogonality(self) -> torch.Tensor:
        """||W W^T - I||^2 over the conv's rows (one per code channel)."""
        w = self.conv.weight.flatten(1)
        return ((w @ w.T - torch.eye(len(w), device=w.device)) ** 2).sum()

    def float_symbols(self, task, images: np.ndarray) -> torch.Tensor:
        return self.quantizer(self.crop(self.analysis(task.stem(to_float(images)))))[1]

    def logits(self, task, symbols: torch.Tensor, ber: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return task.tail(self.decode_values(self.quantizer.centres[symbols.long()]))

    def device_layers(self, task, calibration_images: np.ndarray) -> list[dict]:
        """Stem, encoder conv, then the quantizer on the dequantized int8 conv output, and the crop."""
        layers, feature = export_stem(task, calibration_images, fixed_dec(self.input_quant))
        conv = conv_layer_after(layers, "encoder.conv", self.conv, feature, fixed_dec(self.conv_quant))
        crop = [crop_layer(conv["out_shape"], self.shape.crop_ratio)] if self.shape.crop_ratio < 1 else []
        return [*layers, conv, *float_tail(conv, centres=self.quantizer.centres), *crop]


def build(config, task, image_shape, n_classes: int) -> DeepCOD:
    return DeepCOD(codec_shape(config, task, image_shape))


def loss(task, codec: DeepCOD, feature: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, config, quantized: bool) -> torch.Tensor:
    """Float: feature distillation alone (an autoencoder); quantized: with the task's and the logits' losses."""
    code = codec.crop(codec.analysis(feature))
    restored = codec.decode_values(codec.quantizer(code)[0] if quantized else code)
    loss = FEATURE_WEIGHT * F.mse_loss(restored, feature) + ORTHOGONAL_WEIGHT * codec.orthogonality()
    if quantized:
        logits = task.tail(restored)
        loss = loss + config.beta_cls * F.cross_entropy(logits, labels) + config.kd_weight * distillation(logits, teacher)
    return loss


train = two_step_training("DeepCOD", loss)  # on a clean channel

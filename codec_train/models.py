"""The task CNN (split into a device stem and an edge tail) and the SemanticNN codec."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import GDN, BerAttention, SoftQuantizer


class SmallCNN(nn.Module):
    """The demo's task CNN. `stem` runs on the device, `tail` at the edge."""

    def __init__(self, in_channels: int = 1, stem_channels: int = 16, n_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_channels, 3, padding=1), nn.ReLU())
        self.tail = nn.Sequential(
            nn.Conv2d(stem_channels, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem(x))


@dataclass(frozen=True)
class CodecShape:
    feature_channels: int = 16   # channels of the stem feature
    code_channels: int = 8       # channels of the code (half the feature's by default)
    bits: int = 3                # bits per symbol: 2^bits centres
    decoder_channels: int = 32
    decoder_blocks: int = 2      # each block upsamples x2; the encoder downsamples x4


ENERGY_EPS = 1e-6


class SemanticEncoder(nn.Module):
    """SQ encoder: Conv(k4, s4) -> GDN -> PReLU -> per-sample energy normalisation -> soft quantizer.

    The normalisation (unit mean power per sample) keeps the centres' scale fixed while the
    encoder learns, which gets training off the "decoder outputs the mean" plateau much sooner.
    """

    def __init__(self, shape: CodecShape):
        super().__init__()
        self.conv = nn.Conv2d(shape.feature_channels, shape.code_channels, 4, stride=4)
        self.gdn = GDN(shape.code_channels)
        self.prelu = nn.PReLU(shape.code_channels, init=0.25)
        self.quantizer = SoftQuantizer(shape.bits)

    def analysis(self, feature: torch.Tensor) -> torch.Tensor:
        """Everything before the quantizer, in NHWC order so the last axis meets the centres."""
        y = self.prelu(self.gdn(self.conv(feature)))
        y = y / torch.sqrt((y * y).mean(dim=(1, 2, 3), keepdim=True) + ENERGY_EPS)
        return y.permute(0, 2, 3, 1)


class DecoderBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.igdn = GDN(c_out, inverse=True)
        self.prelu = nn.PReLU(c_out, init=0.25)
        self.attention = BerAttention(c_out)

    def forward(self, x: torch.Tensor, ber: torch.Tensor) -> torch.Tensor:
        return self.attention(self.prelu(self.igdn(self.up(x))), ber)


class SemanticDecoder(nn.Module):
    """BER-aware decoder: blocks of ConvTranspose -> IGDN -> PReLU -> BER attention, then a conv
    and a ReLU, because the stem feature it restores is a ReLU output (no sigmoid cap)."""

    def __init__(self, shape: CodecShape):
        super().__init__()
        widths = [shape.code_channels] + [shape.decoder_channels] * shape.decoder_blocks
        self.blocks = nn.ModuleList(DecoderBlock(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.head = nn.Sequential(nn.Conv2d(shape.decoder_channels, shape.feature_channels, 3, padding=1), nn.Softplus(beta=4.0))

    def forward(self, code_values: torch.Tensor, ber: torch.Tensor) -> torch.Tensor:
        x = code_values.permute(0, 3, 1, 2)
        for block in self.blocks:
            x = block(x, ber)
        return self.head(x)


class SemanticCodec(nn.Module):
    def __init__(self, shape: CodecShape):
        super().__init__()
        self.shape = shape
        self.encoder = SemanticEncoder(shape)
        self.decoder = SemanticDecoder(shape)

    def forward(self, feature: torch.Tensor, ber: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode, send through a bit-flipping channel at `ber` (per sample), decode.
        Returns (restored feature, soft assignment of the sent symbols)."""
        value, _, soft = self.encoder.quantizer(self.encoder.analysis(feature), ber)
        return self.decoder(value, ber), soft

    def decode_symbols(self, symbols: torch.Tensor, ber: torch.Tensor) -> torch.Tensor:
        """symbols: (N, H, W, C) integer centre indices as received."""
        return self.decoder(self.encoder.quantizer.centres[symbols.long()], ber)

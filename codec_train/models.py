"""The codec interface every codec (SemanticNN and the baselines) implements, and the SemanticNN codec:
SQ encoder, bit channel, BER-aware decoder (after CompressAI's layers)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .crop import centre_crop, crop_box, reflect_restore
from .data import to_float
from .layers import GDN, BerAttention, SoftQuantizer
from .qformat import FakeQuant, int8_conv

ENERGY_EPS = 1e-6


@dataclass(frozen=True)
class WireShape:
    """What goes on the wire: symbols of `bits` bits each from a (H, W, C) symbol map `full_shape`, all of
    it or, with crop_ratio < 1, its centred crop (crop.crop_box), as SemanticNN's partial offloading."""
    full_shape: tuple[int, int, int]
    bits: int
    crop_ratio: float = 1.0  # share of the symbol map's area that is sent

    @property
    def sent_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the symbols on the wire, after the crop."""
        h, w, c = self.full_shape
        _, _, ch, cw = crop_box(h, w, self.crop_ratio)
        return ch, cw, c

    @property
    def bytes_per_image(self) -> int:
        return (int(np.prod(self.sent_shape)) * self.bits + 7) // 8


@dataclass(frozen=True)
class CodecShape:
    feature_channels: int        # channels of the stem feature
    feature_size: tuple[int, int]  # its height and width (multiples of 4: the encoder is k4 s4)
    code_channels: int           # channels of the code (half the feature's by default)
    bits: int = 3                # bits per symbol: 2^bits centres
    decoder_channels: int = 32
    decoder_blocks: int = 2      # the first two upsample x2 (undoing the encoder's /4), the rest keep the size
    attention: bool = True       # False: the ablation without BER attention (the decoder never sees the BER)
    crop_ratio: float = 1.0      # partial offloading: share of the code map's area that is sent

    @property
    def code_size(self) -> tuple[int, int]:
        return self.feature_size[0] // 4, self.feature_size[1] // 4

    @property
    def full_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the whole code map, before the crop."""
        return *self.code_size, self.code_channels

    @property
    def sent_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the symbols on the wire, after the crop."""
        _, _, h, w = crop_box(*self.code_size, self.crop_ratio)
        return h, w, self.code_channels

    @property
    def bytes_per_image(self) -> int:
        return (int(np.prod(self.sent_shape)) * self.bits + 7) // 8


class Codec(nn.Module):
    """What the harness needs of a codec. `shape` has `bits`, `full_shape` (H, W, C of the whole symbol map),
    `crop_ratio`, `sent_shape` (H, W, C of the symbols on the wire: the map's centred crop) and
    `bytes_per_image`. The task CNN is passed in: a codec may use its stem, its tail or neither."""

    shape: WireShape | CodecShape
    sends_pixels = False  # True: the device sends the raw uint8 pixels, with no layer before the packer but a crop
    # What the edge puts in place of symbols a lost packet took (erasures.fill_missing): "reflect" (the
    # received neighbours, mirrored, as the crop is restored) or "zeros" (zero_symbol: the symbol whose value is nearest 0).
    missing_fill = "zeros"
    zero_symbol = 0
    side_bytes = 0        # bytes the device reports besides the code, kept on the device (no radio): a local prediction

    def float_symbols(self, task, images: np.ndarray) -> torch.Tensor:
        """The symbols the float device half sends for uint8 images (N, H, W, C): (N, *sent_shape), as the packer takes them."""
        raise NotImplementedError

    def float_side(self, task, images: np.ndarray) -> np.ndarray:
        """The side bytes (N, side_bytes) uint8 the float device half reports for uint8 images."""
        return np.zeros((len(images), 0), np.uint8)

    def logits(self, task, symbols: torch.Tensor, ber: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """Received symbols (N, *sent_shape, uint8 tensor), the BER the decoder is told and the side
        bytes (N, side_bytes) -> class logits."""
        raise NotImplementedError

    def device_layers(self, task, calibration_images: np.ndarray) -> list[dict]:
        """The device half as int8 device-graph layers (export.py), up to the symbols the packer sends."""
        raise NotImplementedError


def nearest_zero(centres: torch.Tensor) -> int:
    """Index of the quantizer centre nearest 0 (the first on a tie)."""
    return int(torch.argmin(centres.detach().abs()))


class SemanticEncoder(nn.Module):
    """SQ encoder: Conv(k4, s4) -> GDN -> PReLU -> per-sample energy normalisation -> soft quantizer.

    The normalisation (unit mean power per sample) keeps the centres' scale fixed while the
    encoder learns, which gets training off the "decoder outputs the mean" plateau much sooner.
    """

    def __init__(self, shape: CodecShape):
        super().__init__()
        self.input_quant = FakeQuant()  # the stem's int8 output format, once training fixes it
        self.conv = nn.Conv2d(shape.feature_channels, shape.code_channels, 4, stride=4)
        self.conv_quant = FakeQuant()   # the conv's int8 output format; with it the conv's weights are rounded too
        self.gdn = GDN(shape.code_channels)
        self.prelu = nn.PReLU(shape.code_channels, init=0.25)
        self.quantizer = SoftQuantizer(shape.bits)

    def analysis(self, feature: torch.Tensor) -> torch.Tensor:
        """Everything before the quantizer, in NHWC order so the last axis meets the centres."""
        y = self.prelu(self.gdn(int8_conv(self.input_quant, self.conv, self.conv_quant, feature)))
        y = y / torch.sqrt((y * y).mean(dim=(1, 2, 3), keepdim=True) + ENERGY_EPS)
        return y.permute(0, 2, 3, 1)


class DecoderBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, attention: bool, upsample: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2) if upsample else nn.ConvTranspose2d(c_in, c_out, 3, padding=1)
        self.igdn = GDN(c_out, inverse=True)
        self.prelu = nn.PReLU(c_out, init=0.25)
        self.attention = BerAttention(c_out) if attention else None

    def forward(self, x: torch.Tensor, ber: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.igdn(self.up(x)))
        return self.attention(x, ber) if self.attention else x


class SemanticDecoder(nn.Module):
    """BER-aware decoder: N blocks of ConvTranspose -> IGDN -> PReLU -> BER attention (the first two
    upsample x2, undoing the encoder's /4), then a conv and a Softplus: the stem feature it restores
    is a ReLU output, so the range is [0, inf), no sigmoid cap."""

    def __init__(self, shape: CodecShape):
        super().__init__()
        widths = [shape.code_channels] + [shape.decoder_channels] * shape.decoder_blocks
        self.blocks = nn.ModuleList(DecoderBlock(a, b, shape.attention, upsample=i < 2)
                                    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)))
        self.head = nn.Sequential(nn.Conv2d(shape.decoder_channels, shape.feature_channels, 3, padding=1), nn.Softplus(beta=4.0))

    def forward(self, code_values: torch.Tensor, ber: torch.Tensor) -> torch.Tensor:
        """code_values: (N, C, H, W) at the full code size."""
        x = code_values
        for block in self.blocks:
            x = block(x, ber)
        return self.head(x)


class SemanticCodec(Codec):
    missing_fill = "reflect"

    def __init__(self, shape: CodecShape):
        super().__init__()
        self.shape = shape
        self.encoder = SemanticEncoder(shape)
        self.decoder = SemanticDecoder(shape)

    @property
    def zero_symbol(self) -> int:
        """The symbol of the centre nearest 0."""
        return nearest_zero(self.encoder.quantizer.centres)

    def encode(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (values, symbols, soft assignment) of what is sent: (N, h, w, C) after the crop."""
        value, symbols, soft = self.encoder.quantizer(self.encoder.analysis(feature))
        if self.shape.crop_ratio < 1:
            value, symbols, soft = (centre_crop(t, self.shape.crop_ratio) for t in (value, symbols, soft))
        return value, symbols, soft

    def decode_values(self, values: torch.Tensor, ber: torch.Tensor) -> torch.Tensor:
        """values: (N, h, w, C) as received -> restored stem feature."""
        x = values.permute(0, 3, 1, 2)
        x = reflect_restore(x, *self.shape.code_size)
        return self.decoder(x, ber if self.shape.attention else torch.zeros_like(ber))

    def forward(self, feature: torch.Tensor, flips: torch.Tensor, ber: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, flip the bits given by `flips` (N, n_sent_symbols * bits) bool, decode with the told BER.
        Returns (restored feature, received values, soft assignment of the sent symbols)."""
        value, symbols, soft = self.encode(feature)
        received = self.encoder.quantizer.corrupt(value, symbols, flips)
        return self.decode_values(received, ber), received, soft

    def decode_symbols(self, symbols: torch.Tensor, ber: torch.Tensor) -> torch.Tensor:
        """symbols: (N, h, w, C) integer centre indices as received."""
        return self.decode_values(self.encoder.quantizer.centres[symbols.long()], ber)

    def float_symbols(self, task, images: np.ndarray) -> torch.Tensor:
        return self.encode(task.stem(to_float(images)))[1]

    def logits(self, task, symbols: torch.Tensor, ber: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return task.tail(self.decode_symbols(symbols, ber))

    def device_layers(self, task, calibration_images: np.ndarray) -> list[dict]:
        """Stem, encoder conv, then GDN, PReLU, energy normalisation and the quantizer in float32, and the crop."""
        from .export import conv_layer_after, crop_layer, export_stem, fixed_dec, float_tail
        enc = self.encoder
        layers, feature = export_stem(task, calibration_images, fixed_dec(enc.input_quant))
        conv = conv_layer_after(layers, "encoder.conv", enc.conv, feature, fixed_dec(enc.conv_quant))
        tail = float_tail(conv, gdn=enc.gdn, prelu=enc.prelu, energy_eps=ENERGY_EPS, centres=enc.quantizer.centres)
        crop = [crop_layer(conv["out_shape"], self.shape.crop_ratio)] if self.shape.crop_ratio < 1 else []
        return [*layers, conv, *tail, *crop]

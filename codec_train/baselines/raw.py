"""Plain offloading: the raw image, or the task stem's raw int8 feature, sent 8 bits a value with no
coding at all; the edge runs the rest of the task CNN on what arrives. With a crop ratio below 1 only the
centred crop of the image or feature is sent (crop.py, as SemanticNN's partial offloading) and the edge
restores the full size by reflection padding."""
from __future__ import annotations

import numpy as np
import torch

from ..crop import centre_crop, reflect_restore, restore_nhwc
from ..data import to_float
from ..export import crop_layer, export_stem, fixed_dec
from ..models import Codec, WireShape
from ..phases import freeze_int8_stem
from ..qformat import FakeQuant, round_to_format
from ..tasks import stem_shape


class RawCodec(Codec):
    """An uncoded 8-bit symbol map (H, W, C), all of it or its centred crop."""

    def __init__(self, full_shape: tuple[int, int, int], crop_ratio: float = 1.0):
        super().__init__()
        self.shape = WireShape(tuple(full_shape), bits=8, crop_ratio=crop_ratio)
        self.shape.sent_shape  # noqa: B018 - raises a clear error now if no crop of that ratio exists

    def crop(self, symbols: torch.Tensor) -> torch.Tensor:
        """The whole symbol map (N, H, W, C) -> what is sent."""
        return centre_crop(symbols, self.shape.crop_ratio).contiguous() if self.shape.crop_ratio < 1 else symbols

    def crop_layers(self) -> list[dict]:
        """The device graph's crop, if there is one."""
        return [crop_layer(list(self.shape.full_shape), self.shape.crop_ratio)] if self.shape.crop_ratio < 1 else []


class RawImage(RawCodec):
    """The uint8 pixels go through the bit channel; the edge runs the whole task CNN."""

    sends_pixels = True
    missing_fill = "reflect"  # neighbouring pixels are alike

    def float_symbols(self, task, images: np.ndarray) -> torch.Tensor:
        return self.crop(torch.from_numpy(images))

    def logits(self, task, symbols: torch.Tensor, ber: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        pixels = restore_nhwc(symbols.to(torch.uint8), *self.shape.full_shape[:2])
        return task(to_float(pixels.numpy()))

    def device_layers(self, task, calibration_images: np.ndarray) -> list[dict]:
        return self.crop_layers()


class RawFeature(RawCodec):
    """The stem's int8 output (two's complement, its own power-of-two format) goes through the bit
    channel; the edge runs the task CNN's tail on it. A flipped sign bit is a large error."""

    missing_fill = "zeros"  # symbol 0 is int8 0: a zero activation
    zero_symbol = 0

    def __init__(self, feature_shape: tuple[int, int, int], crop_ratio: float = 1.0):
        c, h, w = feature_shape
        super().__init__((h, w, c), crop_ratio)
        self.feature_quant = FakeQuant()  # the stem output's int8 format, fixed by training

    def float_symbols(self, task, images: np.ndarray) -> torch.Tensor:
        feature = round_to_format(task.stem(to_float(images)), self.feature_quant.dec)
        q = torch.round(feature * torch.exp2(self.feature_quant.dec.float())).to(torch.int8)
        return self.crop(q.permute(0, 2, 3, 1).view(torch.uint8))

    def logits(self, task, symbols: torch.Tensor, ber: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        q = symbols.to(torch.uint8).view(torch.int8).float()
        feature = (q * torch.exp2(-self.feature_quant.dec.float())).permute(0, 3, 1, 2)
        return task.tail(reflect_restore(feature, *self.shape.full_shape[:2]))

    def device_layers(self, task, calibration_images: np.ndarray) -> list[dict]:
        return [*export_stem(task, calibration_images, fixed_dec(self.feature_quant))[0], *self.crop_layers()]


def build_raw_image(config, task, image_shape, n_classes: int) -> RawImage:
    return RawImage(image_shape, config.crop_ratio)


def build_raw_feature(config, task, image_shape, n_classes: int) -> RawFeature:
    return RawFeature(stem_shape(task, image_shape), config.crop_ratio)


def train_nothing(task, codec, x, y, config, progress, checkpoint, calibration, fresh=True) -> list[str]:
    """The raw image needs no training beyond the task CNN's."""
    return []


def train_raw_feature(task, codec: RawFeature, x, y, config, progress, checkpoint, calibration, fresh=True) -> list[str]:
    """Nothing to learn: the stem is rounded to int8 as the board runs it and its output format fixed."""
    stem_dec, _, _ = freeze_int8_stem(task, x, calibration)
    codec.feature_quant.set_format(stem_dec)
    return []

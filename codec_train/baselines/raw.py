"""Plain offloading: the raw image, or the task stem's raw int8 feature, sent 8 bits a value with no
coding at all; the edge runs the rest of the task CNN on what arrives."""
from __future__ import annotations

import numpy as np
import torch

from ..data import to_float
from ..export import export_stem, fixed_dec
from ..models import Codec, WireShape
from ..phases import freeze_int8_stem
from ..qformat import FakeQuant, round_to_format
from ..tasks import stem_shape


class RawImage(Codec):
    """The uint8 pixels go through the bit channel; the edge runs the whole task CNN."""

    sends_pixels = True

    def __init__(self, image_shape: tuple[int, int, int]):
        super().__init__()
        self.shape = WireShape(tuple(image_shape), bits=8)

    def float_symbols(self, task, images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(images)

    def logits(self, task, symbols: torch.Tensor, ber: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return task(to_float(symbols.numpy()))

    def device_layers(self, task, calibration_images: np.ndarray) -> list[dict]:
        return []


class RawFeature(Codec):
    """The stem's int8 output (two's complement, its own power-of-two format) goes through the bit
    channel; the edge runs the task CNN's tail on it. A flipped sign bit is a large error."""

    def __init__(self, feature_shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = feature_shape
        self.shape = WireShape((h, w, c), bits=8)
        self.feature_quant = FakeQuant()  # the stem output's int8 format, fixed by training

    def float_symbols(self, task, images: np.ndarray) -> torch.Tensor:
        feature = round_to_format(task.stem(to_float(images)), self.feature_quant.dec)
        q = torch.round(feature * torch.exp2(self.feature_quant.dec.float())).to(torch.int8)
        return q.permute(0, 2, 3, 1).view(torch.uint8)

    def logits(self, task, symbols: torch.Tensor, ber: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        q = symbols.to(torch.uint8).view(torch.int8).float()
        return task.tail((q * torch.exp2(-self.feature_quant.dec.float())).permute(0, 3, 1, 2))

    def device_layers(self, task, calibration_images: np.ndarray) -> list[dict]:
        return export_stem(task, calibration_images, fixed_dec(self.feature_quant))[0]


def build_raw_image(config, task, image_shape, n_classes: int) -> RawImage:
    return RawImage(image_shape)


def build_raw_feature(config, task, image_shape, n_classes: int) -> RawFeature:
    return RawFeature(stem_shape(task, image_shape))


def train_nothing(task, codec, x, y, config, progress, checkpoint, calibration, fresh=True) -> list[str]:
    """The raw image needs no training beyond the task CNN's."""
    return []


def train_raw_feature(task, codec: RawFeature, x, y, config, progress, checkpoint, calibration, fresh=True) -> list[str]:
    """Nothing to learn: the stem is rounded to int8 as the board runs it and its output format fixed."""
    stem_dec, _, _ = freeze_int8_stem(task, x, calibration)
    codec.feature_quant.set_format(stem_dec)
    return []

"""A-ADJSCC (Xu et al., 2021: deep JSCC with attention modules), digital, on the task stem's feature:
a GDN conv encoder with power normalisation, a fixed uniform quantizer whose symbols go through the
bit channel, and a GDN decoder whose attention modules see the channel's BER; trained end to end on
reconstruction (MSE of the feature) through the training channel, task-agnostic as JSCC is.

Assumptions: the encoder's attention modules are left out (the device is never told the channel
state); the analog symbols become 2^bits uniform levels, spaced as Max's optimum for a unit Gaussian
(the encoder's output has unit power); the encoder is one k4 s4 conv stage, like SemanticNN's, so the
two differ in what is learnt (centres, the task-oriented losses, XAI), not in size.
"""
from __future__ import annotations

import dataclasses

import torch

from ..models import CodecShape, SemanticCodec
from ..qformat import fix_conv_format
from ..semantic_train import codec_shape, train_codec

UNIFORM_STEP = {1: 1.596, 2: 0.996, 3: 0.586, 4: 0.335}  # Max (1960): optimum uniform quantizer step for N(0, 1)


class ADJSCC(SemanticCodec):
    def __init__(self, shape: CodecShape):
        super().__init__(shape)
        levels = 2 ** shape.bits
        step = UNIFORM_STEP.get(shape.bits, 8.0 / levels)
        with torch.no_grad():
            self.encoder.quantizer.centres.copy_((torch.arange(levels) - (levels - 1) / 2) * step)
        self.encoder.quantizer.centres.requires_grad_(False)


def build(config, task, image_shape, n_classes: int) -> ADJSCC:
    return ADJSCC(codec_shape(config, task, image_shape))


def train(task, codec: ADJSCC, x, y, config, progress, checkpoint, calibration, fresh=True) -> list[str]:
    """Reconstruction only, for stage1 + stage2 epochs (SemanticNN's budget); then the conv output's
    int8 format is fixed, so the float device half sends what the board sends."""
    epochs = config.stage1_epochs + config.stage2_epochs
    train_codec(task, codec, x, y, dataclasses.replace(config, stage1_epochs=epochs, stage2_epochs=0), progress, checkpoint,
                calibration, init_centres=False)
    enc = codec.encoder
    with torch.no_grad():
        features = torch.cat([task.stem(x[i:i + 256]) for i in range(0, min(len(x), config.calibration_images), 256)])
    fix_conv_format(enc.input_quant, enc.conv, enc.conv_quant, features)
    return ["stage1"] if epochs else []

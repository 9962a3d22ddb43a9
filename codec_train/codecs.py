"""Every codec a bundle can hold (TrainConfig.codec): how to build it and how to train it.

build(config, task, image_shape, n_classes) -> Codec (models.Codec); train(task, codec, x, y, config, progress,
checkpoint, calibration, fresh) -> names of the phases trained, run after the task CNN's training.
Baselines train one phase of stage1_epochs + stage2_epochs epochs: SemanticNN's budget."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import semantic_train
from .baselines import adjscc, aecnn, agilenn, deepcod, raw


@dataclass(frozen=True)
class CodecFamily:
    build: Callable
    train: Callable
    summary: str


CODECS = {
    "semanticnn": CodecFamily(semantic_train.build, semantic_train.train, "SemanticNN: SQ encoder, BER-aware decoder, XAI"),
    "raw-image": CodecFamily(raw.build_raw_image, raw.train_nothing, "the uint8 image, uncoded"),
    "raw-feature": CodecFamily(raw.build_raw_feature, raw.train_raw_feature, "the stem's int8 feature, uncoded"),
    "deepcod": CodecFamily(deepcod.build, deepcod.train, "DeepCOD: orthogonal conv encoder, soft-to-hard quantizer, attention decoder"),
    "agilenn": CodecFamily(agilenn.build, agilenn.train, "AgileNN: local predictor on the important channels, the rest offloaded"),
    "aecnn": CodecFamily(aecnn.build, aecnn.train, "AECNN: channel attention keeps the important channels, uniform quantization"),
    "adjscc": CodecFamily(adjscc.build, adjscc.train, "A-ADJSCC, digital: GDN codec, uniform symbols, BER attention"),
}

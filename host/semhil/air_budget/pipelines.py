"""A pipeline is what a device does with its image before the radio: a codec, an FEC after it, and ARQ on
the link. Sizing one to a budget of air bytes chooses the codec's largest crop whose code, with at least the
pipeline's RS parity and the packets' overhead, sent once, fits; then the parity grows to fill what the crop's
steps leave of the budget (a code rate), so that every pipeline with RS sends the same air bytes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from codec_train.compare import largest_crop_ratio
from codec_train.train import TrainConfig, build_models
from radio.fec import RS_MAX_PARITY, Fec, largest_message, parse_fec
from radio.link import Link

from ..errors import SemhilError

SIZABLE_CODECS = ("semanticnn", "deepcod", "raw-feature", "raw-image")  # the codecs that crop their symbol map
# SemanticNN as the paper sends it, with a light code, and with retransmission; the classical pipelines with RS.
DEFAULT_PIPELINES = ("semanticnn", "semanticnn+rs:8", "semanticnn+arq:3", "deepcod+rs:16", "raw-feature+rs:16", "raw-image+rs:16")
PIPELINE_SYNTAX = "<codec>[+rs:<parity>[,interleave=<depth>]][+arq:<retransmissions>], e.g. deepcod+rs:16 or semanticnn+arq:3"


@dataclass(frozen=True)
class Pipeline:
    codec: str
    fec: Fec = Fec()
    retransmissions: int = 0  # ARQ: a lost packet is sent again up to this many times

    @property
    def name(self) -> str:
        parts = [self.codec, *([self.fec.spec] if self.fec != Fec() else []),
                 *([f"arq:{self.retransmissions}"] if self.retransmissions else [])]
        return "+".join(parts)


def parse_pipeline(text: str) -> Pipeline:
    codec, *parts = [part.strip() for part in text.split("+")]
    if codec not in SIZABLE_CODECS:
        raise SemhilError(f"pipeline '{text}': codec '{codec}' cannot be sized to a budget (it does not crop its code): "
                          f"choose among {', '.join(SIZABLE_CODECS)}; expected {PIPELINE_SYNTAX}")
    fec, retransmissions = Fec(), 0
    for part in parts:
        if part.startswith("arq:"):
            try:
                retransmissions = int(part[4:])
            except ValueError:
                retransmissions = -1
            if retransmissions < 0:
                raise SemhilError(f"pipeline '{text}': '{part}' needs a whole number of retransmissions; expected {PIPELINE_SYNTAX}")
        else:
            fec = parse_fec(part)
    return Pipeline(codec, fec, retransmissions)


@dataclass(frozen=True)
class SizedPipeline:
    pipeline: Pipeline
    budget: int           # air bytes per image allowed, one transmission of every packet
    config: TrainConfig   # the codec's training configuration, its crop chosen to fit
    fec: Fec              # the pipeline's FEC, its parity grown to fill the budget
    code_bytes: int       # the packed code
    sent_bytes: int       # the code after FEC: the message the link packs into packets
    air_bytes: int        # sent_bytes and the packets' overhead, sent once

    def describe(self) -> dict:
        return {"pipeline": self.pipeline.name, "codec": self.pipeline.codec, "fec": self.fec.describe(),
                "retransmissions": self.pipeline.retransmissions, "budget_air_bytes": self.budget,
                "crop_ratio": self.config.crop_ratio, "code_bytes": self.code_bytes, "sent_bytes": self.sent_bytes,
                "air_bytes": self.air_bytes}


def size_pipeline(pipeline: Pipeline, base: TrainConfig, budget: int, link: Link,
                  image_shape: tuple[int, int, int], n_classes: int) -> SizedPipeline:
    """The pipeline with the largest crop whose code, FEC and packet overhead fit `budget` air bytes."""
    message = link.largest_message(budget)
    code_budget = largest_message(pipeline.fec, message)
    if code_budget < 1:
        raise SemhilError(f"pipeline {pipeline.name}: {budget} air bytes leave no room for a code on {link.radio.name} "
                          f"({link.radio.overhead_bytes} B of overhead per packet{', and the FEC' if pipeline.fec != Fec() else ''})")
    config = dataclasses.replace(base, codec=pipeline.codec)
    try:
        config = dataclasses.replace(config, crop_ratio=largest_crop_ratio(config, image_shape, n_classes, code_budget))
    except SemhilError as e:
        raise SemhilError(f"pipeline {pipeline.name} at {budget} air bytes: {e}") from None
    code = build_models(config, image_shape, n_classes)[1].shape.bytes_per_image
    fec = fill_with_parity(pipeline.fec, lambda f: link.air_bytes(f.encoded_bytes(code)) <= budget)
    sent = fec.encoded_bytes(code)
    return SizedPipeline(pipeline, budget, config, fec, code, sent, link.air_bytes(sent))


def fill_with_parity(fec: Fec, fits) -> Fec:
    """The FEC with the most RS parity (at least fec's) that fits; fec itself without RS."""
    if not fec.rs_parity:
        return fec
    best = fec
    for parity in range(fec.rs_parity + 1, RS_MAX_PARITY + 1):  # each step adds bytes: the first that does not fit ends it
        candidate = dataclasses.replace(fec, rs_parity=parity)
        if not fits(candidate):
            break
        best = candidate
    return best

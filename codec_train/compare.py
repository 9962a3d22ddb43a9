"""The codecs `semhil compare` trains side by side, each a TrainConfig on the same task CNN: SemanticNN,
SemanticNN at AgileNN's budget (its crop ratio chosen so that its bytes per image are the largest not
above AgileNN's: the paper's SemanticNN_0.2), and every baseline."""
from __future__ import annotations

import dataclasses
import math

from semhil.errors import SemhilError

from .train import TrainConfig, build_models

MATCHED = "semanticnn-matched"
COMPARED = ("semanticnn", MATCHED, "agilenn", "deepcod", "aecnn", "adjscc", "raw-feature", "raw-image")


def bytes_per_image(config: TrainConfig, image_shape: tuple[int, int, int], n_classes: int) -> int:
    return build_models(config, image_shape, n_classes)[1].shape.bytes_per_image


def matched_crop_ratio(config: TrainConfig, image_shape: tuple[int, int, int], n_classes: int, budget: int) -> float:
    """The crop ratio whose SemanticNN sends the most bytes per image without exceeding `budget`."""
    shape = build_models(dataclasses.replace(config, codec="semanticnn"), image_shape, n_classes)[1].shape
    code_h, code_w = shape.code_size
    # each side's crop is floor(sqrt(ratio) * side): a ratio half a step past each size gives that size
    candidates = {min(1.0, ((s + 0.5) / side) ** 2) for side in (code_h, code_w) for s in range(1, side + 1)}
    sizes = {r: dataclasses.replace(shape, crop_ratio=r).bytes_per_image for r in candidates
             if min(math.floor(math.sqrt(r) * side) for side in (code_h, code_w)) >= 1}
    fitting = {r: size for r, size in sizes.items() if size <= budget}
    if not fitting:
        raise SemhilError(f"no crop of SemanticNN's {code_h}x{code_w} code map fits in {budget} bytes per image")
    return max(sorted(fitting), key=fitting.get)


def compare_configs(base: TrainConfig, names: tuple[str, ...], image_shape: tuple[int, int, int], n_classes: int) -> dict[str, TrainConfig]:
    """name -> training configuration, for the codecs `names` (of COMPARED)."""
    unknown = [n for n in names if n not in COMPARED]
    if unknown:
        raise SemhilError(f"unknown codec(s) {', '.join(unknown)}: choose among {', '.join(COMPARED)}")
    configs = {}
    for name in names:
        if name == MATCHED:
            budget = bytes_per_image(dataclasses.replace(base, codec="agilenn"), image_shape, n_classes)
            configs[name] = dataclasses.replace(base, codec="semanticnn",
                                                crop_ratio=matched_crop_ratio(base, image_shape, n_classes, budget))
        else:
            configs[name] = dataclasses.replace(base, codec=name)
    return configs

"""The codecs `semhil compare` trains side by side, each a TrainConfig on the same task CNN: SemanticNN,
SemanticNN at AgileNN's budget (its crop ratio chosen so that its bytes per image are the largest not
above AgileNN's: the paper's SemanticNN_0.2), and every baseline."""
from __future__ import annotations

import dataclasses
import math

from semhil.errors import SemhilError

from .codes import code_bytes
from .train import TrainConfig, build_models

MATCHED = "semanticnn-matched"
COMPARED = ("semanticnn", MATCHED, "agilenn", "deepcod", "aecnn", "adjscc", "raw-feature", "raw-image")


def bytes_per_image(config: TrainConfig, image_shape: tuple[int, int, int], n_classes: int) -> int:
    return build_models(config, image_shape, n_classes)[1].shape.bytes_per_image


def largest_crop_ratio(config: TrainConfig, image_shape: tuple[int, int, int], n_classes: int, budget: int) -> float:
    """The crop ratio at which config's codec sends the most bytes per image without exceeding `budget`."""
    shape = build_models(dataclasses.replace(config, crop_ratio=1.0), image_shape, n_classes)[1].shape
    map_h, map_w, channels = shape.sent_shape

    # each side's crop is floor(sqrt(ratio) * side): a ratio half a step past each size gives that size
    candidates = {min(1.0, ((s + 0.5) / side) ** 2) for side in (map_h, map_w) for s in range(1, side + 1)}
    sizes = {}
    for ratio in candidates:
        h, w = math.floor(math.sqrt(ratio) * map_h), math.floor(math.sqrt(ratio) * map_w)
        if min(h, w) >= 1:
            sizes[ratio] = code_bytes(h * w * channels, shape.bits)
    fitting = {r: size for r, size in sizes.items() if size <= budget}
    if not fitting:
        raise SemhilError(f"no crop of {config.codec}'s {map_h}x{map_w}x{channels} symbol map fits in {budget} bytes per image")
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
            semanticnn = dataclasses.replace(base, codec="semanticnn")
            configs[name] = dataclasses.replace(semanticnn, crop_ratio=largest_crop_ratio(semanticnn, image_shape, n_classes, budget))
        else:
            configs[name] = dataclasses.replace(base, codec=name)
    return configs

"""Shapes, MACs and bytes per image of a codec, from real tensors, without training."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .train import TrainConfig, build_models


def count_macs(module: nn.Module, run) -> int:
    """Multiply-accumulates of the convolutions and linear layers inside `module` during run()."""
    total = 0

    def hook(layer, inputs, output):
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            total += output.numel() * layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, nn.ConvTranspose2d):
            total += inputs[0].numel() * layer.out_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, nn.Linear):
            total += output.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total


@torch.no_grad()
def inspect_codec(base: str, image_size: int, in_channels: int = 3, n_classes: int = 10, crop_ratio: float = 1.0,
                  code_channels: int | None = None) -> dict:
    config = TrainConfig(base=base, image_size=image_size, crop_ratio=crop_ratio, code_channels=code_channels)
    task, codec = build_models(config, (image_size, image_size, in_channels), n_classes)
    task.eval()
    codec.eval()
    x = torch.zeros(1, in_channels, image_size, image_size)
    feature = task.stem(x)
    values, _, _ = codec.encode(feature)
    shape = codec.shape
    feature_elements = feature.numel()
    return {
        "base": base, "image_size": image_size, "input_shape": [in_channels, image_size, image_size],
        "stem_feature_shape": list(feature.shape[1:]),
        "code_shape": [shape.code_channels, *shape.code_size],
        "crop_ratio": crop_ratio,
        "sent_shape": [values.shape[3], values.shape[1], values.shape[2]],
        "bits": shape.bits,
        "bytes_per_image": shape.bytes_per_image,
        "feature_bytes_float32": 4 * feature_elements,
        "compression_vs_float32_feature": round(4 * feature_elements / shape.bytes_per_image, 2),
        "device_macs": {"stem": count_macs(task.stem, lambda: task.stem(x)),
                        "encoder": count_macs(codec.encoder, lambda: codec.encoder.analysis(feature))},
        "edge_macs": {"decoder": count_macs(codec.decoder, lambda: codec.decode_values(values, torch.zeros(1))),
                      "tail": count_macs(task.tail, lambda: task.tail(feature))},
        "device_parameters": int(sum(p.numel() for p in task.stem.parameters()) + sum(p.numel() for p in codec.encoder.parameters())),
        "symbols_sent": int(np.prod(values.shape[1:])),
    }

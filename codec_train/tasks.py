"""Task CNNs split into a device stem and an edge tail. A model declares both; `forward` is tail(stem(x)).

ResNet-50 and MobileNetV2 are written here, layer for layer as published, because the torchvision
wheel that installs beside the CPU build of torch cannot be imported (its compiled ops need CUDA
libraries)."""
from __future__ import annotations

import torch
from torch import nn

from semhil.errors import SemhilError


class SplitModel(nn.Module):
    def __init__(self, stem: nn.Module, tail: nn.Module):
        super().__init__()
        self.stem = stem
        self.tail = tail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem(x))


def small_cnn(in_channels: int, n_classes: int) -> SplitModel:
    """The demo's CNN: a 3x3 conv + ReLU stem, then three convs, pooling and a linear layer."""
    stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU())
    tail = nn.Sequential(
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, n_classes),
    )
    return SplitModel(stem, tail)


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, act(inplace=True)) if act else nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 reduce, 3x3 (carries the stride), 1x1 expand x4, plus the shortcut."""

    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, width, 1), conv_bn(width, width, 3, stride), conv_bn(width, 4 * width, 1, act=None))
        self.shortcut = nn.Identity() if stride == 1 and c_in == 4 * width else conv_bn(c_in, 4 * width, 1, stride, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet50(in_channels: int, n_classes: int) -> SplitModel:
    """ResNet-50 (He et al. 2016, v1.5 as in torchvision) split after its stem: conv 7x7/2 + BN + ReLU
    + max-pool 3x3/2 (64 channels, 1/4 of the image side)."""
    stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1))
    blocks, c_in = [], 64
    for width, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(count):
            blocks.append(Bottleneck(c_in, width, stride if i == 0 else 1))
            c_in = 4 * width
    tail = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, n_classes))
    return SplitModel(stem, tail)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (x t), 3x3 depthwise (carries the stride), 1x1 linear projection."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        layers = [conv_bn(c_in, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6), conv_bn(hidden, c_out, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2(in_channels: int, n_classes: int) -> SplitModel:
    """MobileNetV2 (Sandler et al. 2018) split after its first conv 3x3/2 + BN + ReLU6 (32 channels, 1/2 side)."""
    blocks, c_in = [], 32
    for expand, c_out, count, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                                         (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(count):
            blocks.append(InvertedResidual(c_in, c_out, stride if i == 0 else 1, expand))
            c_in = c_out
    tail = nn.Sequential(*blocks, conv_bn(c_in, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(1280, n_classes))
    return SplitModel(conv_bn(in_channels, 32, 3, 2, act=nn.ReLU6), tail)


BASES = {"small": small_cnn, "resnet50": resnet50, "mobilenetv2": mobilenet_v2}


def build_task(base: str, in_channels: int, n_classes: int) -> SplitModel:
    if base not in BASES:
        raise SemhilError(f"unknown base model {base!r}: choose one of {', '.join(BASES)}")
    return BASES[base](in_channels, n_classes)


@torch.no_grad()
def stem_shape(task: SplitModel, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(channels, height, width) of the stem feature for an (H, W, C) image."""
    h, w, c = image_shape
    was_training = task.training
    task.eval()
    out = task.stem(torch.zeros(1, c, h, w)).shape[1:]
    task.train(was_training)
    return tuple(out)

"""Partial offloading (Algorithm 1): send a centred crop of side floor(sqrt(a) * H) x floor(sqrt(a) * W)
of every code channel; the receiver restores the full size by reflection padding."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from semhil.errors import SemhilError


def crop_box(height: int, width: int, ratio: float) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) of the centred crop that keeps `ratio` of the area."""
    if not 0 < ratio <= 1:
        raise SemhilError(f"crop ratio {ratio} must be within (0, 1]")
    ch, cw = math.floor(math.sqrt(ratio) * height), math.floor(math.sqrt(ratio) * width)
    if ch < 1 or cw < 1:
        raise SemhilError(f"no crop of ratio {ratio} exists on a {height}x{width} code map "
                          f"(floor(sqrt({ratio}) * side) is 0): use a ratio of at least {1 / min(height, width) ** 2:.3g}")
    return (height - ch) // 2, (width - cw) // 2, ch, cw


def centre_crop(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """x: (N, H, W, C) -> the centred crop (N, h, w, C)."""
    top, left, ch, cw = crop_box(x.shape[1], x.shape[2], ratio)
    return x[:, top:top + ch, left:left + cw, :]


def reflect_restore(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, C, h, w) centred crop -> (N, C, height, width) by reflection padding.

    Reflection can add at most size-1 per step, so small crops are padded in several steps; a crop
    one element wide has nothing to reflect and is replicated."""
    top, left = (height - x.shape[2]) // 2, (width - x.shape[3]) // 2
    need = [left, width - x.shape[3] - left, top, height - x.shape[2] - top]  # F.pad order: l, r, t, b
    while any(need):
        h, w = x.shape[2], x.shape[3]
        if min(h, w) == 1:
            return F.pad(x, need, mode="replicate")
        step = [min(need[0], w - 1), min(need[1], w - 1), min(need[2], h - 1), min(need[3], h - 1)]
        x = F.pad(x, step, mode="reflect")
        need = [n - s for n, s in zip(need, step, strict=True)]
    return x


def restore_nhwc(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, h, w, C) centred crop, of any dtype -> (N, height, width, C) by reflect_restore; x itself when
    nothing was cropped. Integer values come back exactly (float32 holds every 8-bit value; reflection only copies)."""
    if tuple(x.shape[1:3]) == (height, width):
        return x
    y = x.permute(0, 3, 1, 2)
    y = reflect_restore(y if y.is_floating_point() else y.float(), height, width)
    return y.to(x.dtype).permute(0, 2, 3, 1)

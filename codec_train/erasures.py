"""Filling lost symbols at the edge: when a radio packet is lost (a CRC drop), the edge knows which symbols
of the code it carried and fills them before decoding, as the codec chooses (models.Codec.missing_fill and
zero_symbol): by reflection of the received neighbours, as a crop is restored, or with the symbol that means zero."""
from __future__ import annotations

import numpy as np

from semhil.errors import SemhilError

FILLS = ("reflect", "zeros")


def fill_missing(symbols: np.ndarray, missing: np.ndarray, how: str, zero_symbol: int) -> np.ndarray:
    """Received symbols (N, H, W, C) uint8 and the mask (same shape, bool) of those that are missing ->
    a new array with the missing ones filled; received symbols are never changed.

    how="zeros": every missing symbol becomes zero_symbol.
    how="reflect": along the height axis, for each (image, column, channel) line, a missing symbol at h
    inside a run of missing rows [a, b) takes the value at a - 1 - (h - a) (reflection about the run's
    upper edge) when that index is >= 0 and not missing, else the value at b + (b - 1 - h) when that
    index is < H and not missing, else the nearest received symbol in that line (the upper one on a
    tie), else zero_symbol (the whole line is missing).
    """
    symbols, missing = np.asarray(symbols), np.asarray(missing)
    if symbols.ndim != 4 or missing.shape != symbols.shape:
        raise SemhilError(f"fill_missing takes symbols (N, H, W, C) and a mask of the same shape, not {symbols.shape} and {missing.shape}")
    if symbols.dtype != np.uint8 or missing.dtype != np.bool_:
        raise SemhilError(f"fill_missing takes uint8 symbols and a bool mask, not {symbols.dtype} and {missing.dtype}")
    if not 0 <= zero_symbol <= 255:
        raise SemhilError(f"zero_symbol {zero_symbol} is not a symbol (0 to 255)")
    if how not in FILLS:
        raise SemhilError(f"unknown fill {how!r}: choose one of {', '.join(FILLS)}")
    out = symbols.copy()
    if how == "zeros" or not missing.any():
        out[missing] = zero_symbol
        return out
    height = symbols.shape[1]
    h = np.arange(height).reshape(1, height, 1, 1)
    # the nearest received row at or above h (else -1) and at or below h (else H), for every position
    above = np.maximum.accumulate(np.where(missing, -1, h), axis=1)
    below = np.flip(np.minimum.accumulate(np.flip(np.where(missing, height, h), axis=1), axis=1), axis=1)
    a, b = above + 1, below  # at a missing position: its run of missing rows is [a, b)

    def received_at(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the symbols at rows `index` of each line, whether that row is in the line and received)."""
        inside = (index >= 0) & (index < height)
        safe = np.where(inside, index, 0)
        return np.take_along_axis(out, safe, axis=1), inside & ~np.take_along_axis(missing, safe, axis=1)

    upper, upper_ok = received_at(2 * a - 1 - h)
    lower, lower_ok = received_at(2 * b - 1 - h)
    nearest_above, above_ok = received_at(above)
    nearest_below, below_ok = received_at(below)
    take_above = above_ok & (~below_ok | (h - above <= below - h))
    nearest = np.where(take_above, nearest_above, np.where(below_ok, nearest_below, np.uint8(zero_symbol)))
    filled = np.where(upper_ok, upper, np.where(lower_ok, lower, nearest))
    out[missing] = filled[missing]
    return out


def fill_for(codec, symbols: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """fill_missing as `codec` chooses (its missing_fill and zero_symbol)."""
    return fill_missing(symbols, missing, codec.missing_fill, int(codec.zero_symbol))

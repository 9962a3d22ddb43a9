"""The simulated radio channel between device and edge: bit flips on the code payload."""
from __future__ import annotations

import numpy as np


def flip_bits_iid(payloads: np.ndarray, ber: float, rng: np.random.Generator, n_bits: int | None = None) -> np.ndarray:
    """Flip each payload bit independently with probability `ber`.

    payloads: (N, bytes) uint8. n_bits: how many leading bits of each payload carry data
    (the padding bits of the last byte are left alone); all bits by default.
    """
    if not 0.0 <= ber <= 1.0:
        raise ValueError(f"BER must be within [0, 1], got {ber}")
    n_bits = payloads.shape[1] * 8 if n_bits is None else n_bits
    flips = np.zeros((payloads.shape[0], payloads.shape[1] * 8), dtype=np.uint8)
    flips[:, :n_bits] = rng.random((payloads.shape[0], n_bits)) < ber
    return payloads ^ np.packbits(flips, axis=-1)

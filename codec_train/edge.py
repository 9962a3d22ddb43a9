"""The edge side: received payloads -> symbols -> the codec's decoder and task tail -> prediction."""
from __future__ import annotations

import numpy as np
import torch

from semhil.channel import apply_channel
from semhil.pilots import send_with_pilots

from .codes import unpack_symbols


@torch.no_grad()
def predict_from_payloads(task, codec, payloads: np.ndarray, ber) -> np.ndarray:
    """Decode received payloads (the code, then the codec's side bytes), telling the decoder the BER
    (one for all, or one per payload); returns class indices."""
    symbols = torch.from_numpy(unpack_symbols(payloads, codec.shape.bits, codec.shape.sent_shape))
    side = torch.from_numpy(np.ascontiguousarray(payloads[:, codec.shape.bytes_per_image:]))
    bers = torch.from_numpy(np.broadcast_to(np.asarray(ber, np.float32), (len(payloads),)).copy())
    preds = [codec.logits(task, symbols[i:i + 256], bers[i:i + 256], side[i:i + 256]).argmax(1) for i in range(0, len(symbols), 256)]
    return torch.cat(preds).numpy()


def transmit(codec, payloads: np.ndarray, channel, seed: int, pilots=None) -> tuple[np.ndarray, np.ndarray]:
    """Send payloads through `channel` (seeded); with pilots (semhil.pilots.Pilots) each frame carries
    pilot bits and the BER told is the one estimated from them. Only the code crosses the channel, not
    the side bytes after it. Returns (received payloads, the BER the decoder is told per frame)."""
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits
    rng = np.random.default_rng(seed)
    if pilots is None:
        return apply_channel(payloads, channel, rng, n_bits=n_bits)
    received, ber, _ = send_with_pilots(payloads, channel, rng, n_bits, pilots)
    return received, ber


def predict_through_channel(task, codec, payloads: np.ndarray, channel, seed: int, pilots=None) -> tuple[np.ndarray, np.ndarray]:
    """transmit, then decode with the BER told and classify. Returns (predictions, the BER told per frame)."""
    received, ber = transmit(codec, payloads, channel, seed, pilots)
    return predict_from_payloads(task, codec, received, ber), ber

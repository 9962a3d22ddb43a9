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


def predict_through_channel(task, codec, payloads: np.ndarray, channel, seed: int, pilots=None) -> tuple[np.ndarray, np.ndarray]:
    """Send payloads through `channel` (seeded), decode with the BER the channel tells, classify; with
    pilots (semhil.pilots.Pilots) the frames carry pilot bits and the decoder is told the BER estimated
    from them instead. Only the code crosses the channel, not the side bytes. Returns (predictions, the BER the decoder was told per frame)."""
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits
    rng = np.random.default_rng(seed)
    if pilots is None:
        received, ber = apply_channel(payloads, channel, rng, n_bits=n_bits)
    else:
        received, ber, _ = send_with_pilots(payloads, channel, rng, n_bits, pilots)
    return predict_from_payloads(task, codec, received, ber), ber

"""The edge side: received payloads -> symbols -> BER-aware decoder -> task tail -> prediction."""
from __future__ import annotations

import numpy as np
import torch

from semhil.channel import flip_bits_iid

from .codes import pack_symbols, unpack_symbols


@torch.no_grad()
def predict_from_payloads(task, codec, payloads: np.ndarray, ber) -> np.ndarray:
    """Decode received payloads, telling the decoder the BER (one for all, or one per payload);
    returns class indices."""
    symbols = torch.from_numpy(unpack_symbols(payloads, codec.shape.bits, codec.shape.sent_shape))
    bers = torch.from_numpy(np.broadcast_to(np.asarray(ber, np.float32), (len(payloads),)).copy())
    preds = [task.tail(codec.decode_symbols(symbols[i:i + 256], bers[i:i + 256])).argmax(1) for i in range(0, len(symbols), 256)]
    return torch.cat(preds).numpy()


def predict_from_symbols(task, codec, symbols: np.ndarray, ber: float, seed: int) -> np.ndarray:
    """Pack, send through an i.i.d. bit channel at `ber`, decode: the whole return path."""
    bits = codec.shape.bits
    payloads = pack_symbols(symbols, bits)
    received = flip_bits_iid(payloads, ber, np.random.default_rng(seed), n_bits=symbols[0].size * bits)
    return predict_from_payloads(task, codec, received, ber)

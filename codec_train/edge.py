"""The edge side: received payloads -> symbols -> the codec's decoder and task tail -> prediction."""
from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from semhil.channel import IidChannel, apply_channel
from semhil.pilots import send_with_pilots

from .codes import unpack_symbols

DECODE_BATCH = 64  # images per decoder call: from 128 on it ran slower (megabyte activations, page-faulted anew at each layer)
CHANNEL_CHUNK = 4096  # frames an i.i.d. channel draws at a time


def edge_models(task, codec):
    """Copies of the task CNN and the codec laid out channels-last, the layout the CPU convolutions run fastest in."""
    return tuple(copy.deepcopy(model).to(memory_format=torch.channels_last) for model in (task, codec))


def predict_from_payloads(task, codec, payloads: np.ndarray, ber) -> np.ndarray:
    """Decode received payloads (the code, then the codec's side bytes), telling the decoder the BER
    (one for all, or one per payload), DECODE_BATCH images at a time; returns class indices."""
    task, codec = edge_models(task, codec)
    bers = np.broadcast_to(np.asarray(ber, np.float32), (len(payloads),))

    def decode(start: int) -> np.ndarray:
        return decode_batch(task, codec, payloads[start:start + DECODE_BATCH], bers[start:start + DECODE_BATCH])

    return np.concatenate([np.zeros(0, np.int64), *map_batches(decode, len(payloads), DECODE_BATCH)])


def map_batches(work, n: int, batch: int) -> list:
    """[work(start) for start in range(0, n, batch)], as many at once as torch would have used threads, each
    on one torch thread. Threads that each take a whole batch wait for no one, where torch's own threads wait
    for each other at every layer for as long as a busy core holds one of them back (on a shared machine,
    several times slower). `work` runs in other threads, so it sets its own grad mode."""
    workers = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(work, range(0, n, batch)))
    finally:
        torch.set_num_threads(workers)


@torch.inference_mode()
def decode_batch(task, codec, payloads: np.ndarray, bers: np.ndarray) -> np.ndarray:
    symbols = torch.from_numpy(unpack_symbols(payloads, codec.shape.bits, codec.shape.sent_shape))
    side = torch.from_numpy(np.ascontiguousarray(payloads[:, codec.shape.bytes_per_image:]))
    return codec.logits(task, symbols, torch.from_numpy(bers.copy()), side).argmax(1).numpy()


def transmit(codec, payloads: np.ndarray, channel, seed: int, pilots=None) -> tuple[np.ndarray, np.ndarray]:
    """Send payloads through `channel` (seeded); with pilots (semhil.pilots.Pilots) each frame carries
    pilot bits and the BER told is the one estimated from them. Only the code crosses the channel, not
    the side bytes after it. Returns (received payloads, the BER the decoder is told per frame)."""
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits
    rng = np.random.default_rng(seed)
    if pilots is not None:
        received, ber, _ = send_with_pilots(payloads, channel, rng, n_bits, pilots)
        return received, ber
    if not isinstance(channel, IidChannel):  # its draws are not frame by frame (a BER per frame first, or a state that carries on)
        return apply_channel(payloads, channel, rng, n_bits=n_bits)
    # An i.i.d. channel draws one uniform per bit, frame after frame: drawn in chunks, the same numbers in the same order.
    parts = [apply_channel(payloads[start:start + CHANNEL_CHUNK], channel, rng, n_bits=n_bits)
             for start in range(0, max(len(payloads), 1), CHANNEL_CHUNK)]
    return np.concatenate([received for received, _ in parts]), np.concatenate([ber for _, ber in parts])


def predict_through_channel(task, codec, payloads: np.ndarray, channel, seed: int, pilots=None) -> tuple[np.ndarray, np.ndarray]:
    """transmit, then decode with the BER told and classify. Returns (predictions, the BER told per frame)."""
    received, ber = transmit(codec, payloads, channel, seed, pilots)
    return predict_from_payloads(task, codec, received, ber), ber

"""The edge side: received payloads -> symbols -> the codec's decoder and task tail -> prediction."""
from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from radio.channel import IidChannel, apply_channel
from radio.link import Delivery, Link, send
from radio.pilots import send_with_pilots

from .codes import symbols_touched, unpack_symbols
from .erasures import fill_missing

DECODE_BATCH = 64  # images per decoder call: from 128 on it ran slower (megabyte activations, page-faulted anew at each layer)
CHANNEL_CHUNK = 4096  # frames an i.i.d. channel draws at a time


def edge_models(task, codec):
    """Copies of the task CNN and the codec laid out channels-last, the layout the CPU convolutions run fastest in."""
    return tuple(copy.deepcopy(model).to(memory_format=torch.channels_last) for model in (task, codec))


def predict_from_payloads(task, codec, payloads: np.ndarray, ber, missing: np.ndarray | None = None) -> np.ndarray:
    """Decode received payloads (the code, then the codec's side bytes), telling the decoder the BER
    (one for all, or one per payload), DECODE_BATCH images at a time; returns class indices. missing
    (N, code bytes) bool: bytes of the code that never arrived; the symbols they held are filled the codec's way."""
    task, codec = edge_models(task, codec)
    bers = np.broadcast_to(np.asarray(ber, np.float32), (len(payloads),))

    def decode(start: int) -> np.ndarray:
        stop = start + DECODE_BATCH
        return decode_batch(task, codec, payloads[start:stop], bers[start:stop], None if missing is None else missing[start:stop])

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
def decode_batch(task, codec, payloads: np.ndarray, bers: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    symbols = unpack_symbols(payloads, codec.shape.bits, codec.shape.sent_shape)
    if missing is not None and missing.any():
        lost = symbols_touched(missing, codec.shape.bits, codec.shape.sent_shape)
        symbols = fill_missing(symbols, lost, codec.missing_fill, codec.zero_symbol)
    symbols = torch.from_numpy(symbols)
    side = torch.from_numpy(np.ascontiguousarray(payloads[:, codec.shape.bytes_per_image:]))
    return codec.logits(task, symbols, torch.from_numpy(bers.copy()), side).argmax(1).numpy()


def transmit(codec, payloads: np.ndarray, channel, seed: int, pilots=None, fec=None) -> tuple[np.ndarray, np.ndarray]:
    """Send payloads through `channel` (seeded); with pilots (radio.pilots.Pilots) each frame carries
    pilot bits and the BER told is the one estimated from them. Only the code crosses the channel, not
    the side bytes after it. With fec (radio.fec.Fec: a protected bundle's payloads), the code crosses the
    channel as the device protected it and is decoded on arrival; the BER told is then the channel's on the
    share of RS blocks that could not be corrected. Returns (received payloads: the packed code, then the
    side bytes; the BER the decoder is told per frame)."""
    code_bytes = codec.shape.bytes_per_image
    sent_bytes = code_bytes if fec is None else fec.encoded_bytes(code_bytes)
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits if fec is None else sent_bytes * 8
    received, ber = send_bits(payloads, channel, np.random.default_rng(seed), n_bits, pilots)
    if fec is None:
        return received, ber
    decoded = fec.decode(received[:, :sent_bytes])
    uncorrected = 1.0 - decoded.block_ok.mean(axis=1) if decoded.block_ok.size else np.zeros(len(received))
    return np.concatenate([decoded.payloads, received[:, sent_bytes:]], axis=1), ber * uncorrected


def send_bits(payloads: np.ndarray, channel, rng: np.random.Generator, n_bits: int, pilots) -> tuple[np.ndarray, np.ndarray]:
    """The first n_bits of each payload through the channel: (received payloads, the BER told per frame)."""
    if pilots is not None:
        received, ber, _ = send_with_pilots(payloads, channel, rng, n_bits, pilots)
        return received, ber
    if not isinstance(channel, IidChannel):  # its draws are not frame by frame (a BER per frame first, or a state that carries on)
        return apply_channel(payloads, channel, rng, n_bits=n_bits)
    # An i.i.d. channel draws one uniform per bit, frame after frame: drawn in chunks, the same numbers in the same order.
    parts = [apply_channel(payloads[start:start + CHANNEL_CHUNK], channel, rng, n_bits=n_bits)
             for start in range(0, max(len(payloads), 1), CHANNEL_CHUNK)]
    return np.concatenate([received for received, _ in parts]), np.concatenate([ber for _, ber in parts])


def predict_through_channel(task, codec, payloads: np.ndarray, channel, seed: int, pilots=None, fec=None) -> tuple[np.ndarray, np.ndarray]:
    """transmit, then decode with the BER told and classify. Returns (predictions, the BER told per frame)."""
    received, ber = transmit(codec, payloads, channel, seed, pilots, fec)
    return predict_from_payloads(task, codec, received, ber), ber


@dataclass(frozen=True)
class Arrival:
    """What the edge has of each image after the link layer (radio.link) and the FEC, if any."""
    payloads: np.ndarray  # (N, code bytes + side bytes) uint8: the packed code (lost bytes zero), then the side bytes
    missing: np.ndarray   # (N, code bytes) bool: code bytes that never arrived (lost packets the FEC could not recover)
    ber: np.ndarray       # (N,) the BER the decoder is told
    delivery: Delivery    # the link's account: packets lost, attempts, air bytes, airtime


def send_over_link(codec, payloads: np.ndarray, link: Link, channel, seed: int, fec=None) -> Arrival:
    """The code of each payload through the link (packets of link.radio over `channel`, seeded), then the FEC's
    decoder. With the CRC on, what arrives is exact and the decoder is told BER 0; with it off, the channel's
    BER on the share of RS blocks that could not be corrected (all of it without RS)."""
    code_bytes = codec.shape.bytes_per_image
    sent_bytes = code_bytes if fec is None else fec.encoded_bytes(code_bytes)
    delivery = send(np.ascontiguousarray(payloads[:, :sent_bytes]), link, channel, np.random.default_rng(seed))
    if fec is None:
        code, missing, uncorrected = delivery.received, delivery.lost, np.ones(len(payloads))
    else:
        decoded = fec.decode(delivery.received, delivery.lost)
        code, missing = decoded.payloads, decoded.missing
        uncorrected = 1.0 - decoded.block_ok.mean(axis=1) if decoded.block_ok.size else np.ones(len(payloads))
    ber = np.zeros(len(payloads)) if link.crc else delivery.ber * uncorrected
    return Arrival(np.concatenate([code, payloads[:, sent_bytes:]], axis=1), missing, ber, delivery)

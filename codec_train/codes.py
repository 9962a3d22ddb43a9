"""Fixed-length codes on the wire.

Bit order: symbols are taken in the code tensor's HWC order (channel fastest); each symbol is
`bits` bits, most significant first, written one after another into a bit stream; bytes are
filled most significant bit first and the last byte is padded with zeros. The firmware's packer
(device/kernels) writes the same stream. Also: the size the codes would have in a Huffman code.
"""
from __future__ import annotations

import heapq

import numpy as np


def code_bytes(n_symbols: int, bits: int) -> int:
    return (n_symbols * bits + 7) // 8


def pack_symbols(symbols: np.ndarray, bits: int) -> np.ndarray:
    """(N, ...) symbols < 2^bits -> (N, code_bytes) uint8."""
    n = symbols.shape[0]
    flat = symbols.reshape(n, -1).astype(np.uint8)
    if flat.size and flat.max() >= 1 << bits:
        raise ValueError(f"symbol {flat.max()} does not fit in {bits} bits")
    stream = np.unpackbits(flat[..., None], axis=-1)[..., 8 - bits:].reshape(n, -1)
    return np.packbits(stream, axis=-1)


def unpack_symbols(payload: np.ndarray, bits: int, shape: tuple[int, ...]) -> np.ndarray:
    """(N, code_bytes) uint8 -> (N, *shape) symbols; inverse of pack_symbols."""
    n_symbols = int(np.prod(shape))
    stream = np.unpackbits(payload, axis=-1)[:, :n_symbols * bits].reshape(len(payload), n_symbols, bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint8)
    return (stream * weights).sum(-1).astype(np.uint8).reshape(len(payload), *shape)


def symbols_touched(byte_mask: np.ndarray, bits: int, shape: tuple[int, ...]) -> np.ndarray:
    """(N, code_bytes) bool marking bytes -> (N, *shape) bool: the symbols with a bit in a marked byte."""
    n_symbols = int(np.prod(shape))
    stream = np.repeat(byte_mask, 8, axis=1)[:, :n_symbols * bits]
    return stream.reshape(len(byte_mask), n_symbols, bits).any(axis=2).reshape(len(byte_mask), *shape)


def huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Code length of each symbol in a Huffman code for these counts (symbols never seen get the longest)."""
    counts = np.maximum(counts, 1)
    heap = [(int(c), i, [i]) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    lengths = np.zeros(len(counts), int)
    while len(heap) > 1:
        c1, i1, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (c1 + c2, i1, s1 + s2))
    return np.maximum(lengths, 1)


def entropy_coded_bytes(train_symbols: np.ndarray, test_symbols: np.ndarray, levels: int) -> float:
    """Mean bytes per image of the test codes in a Huffman code built on the training codes."""
    lengths = huffman_lengths(np.bincount(train_symbols.ravel(), minlength=levels))
    bits = lengths[test_symbols.reshape(len(test_symbols), -1)].sum(1)
    return float(np.mean(np.ceil(bits / 8)))

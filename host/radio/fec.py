"""Bit-level protection of the device's code bytes on the radio: the device encodes (device/core/ee_fec.c),
the edge decodes here; encode() here gives the device's bytes bit for bit.

The stages, in sending order: Reed-Solomon over whole bytes, then a bit block interleaver over the whole
encoded message. (An inner bit-level code, e.g. a convolutional one, would sit between the two.)

Reed-Solomon: reedsolo's RSCodec(nsym=rs_parity) layout, GF(2^8) with primitive polynomial 0x11d, generator 2,
first consecutive root 2^0: the message is cut into blocks of 255 - rs_parity data bytes (the last one shorter,
a shortened code), each followed by its rs_parity parity bytes. A block corrects 2 * errors + erasures <= rs_parity.

Interleaver of depth d over n bits (most significant bit of each byte first): bit i is written row by row into a
matrix of d rows and ceil(n / d) columns and read column by column, skipping the cells past n, so any n works
without padding. When d divides n, any run of d bits on the air comes from d different rows, at least
n / d - 1 bits apart: a burst of up to d bits hits as many different bytes, one bit each.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NoReturn

import numpy as np
import reedsolo

from .errors import RadioError

RS_BLOCK_BYTES = 255  # data + parity bytes of a full Reed-Solomon block over GF(2^8)
RS_MAX_PARITY = RS_BLOCK_BYTES - 1  # a block keeps at least one data byte
GF_PRIMITIVE = 0x11D

FEC_SYNTAX = "none, rs:<parity bytes per block, 1..254>[,interleave=<depth>] or interleave=<depth>"


def _gf_tables() -> tuple[np.ndarray, np.ndarray]:
    """(exp (255,), log (256,)): exp[i] = 2^i in GF(2^8), log[exp[i]] = i (log[0] unused)."""
    exp = np.zeros(255, np.int64)
    x = 1
    for i in range(255):
        exp[i] = x
        x <<= 1
        if x & 0x100:
            x ^= GF_PRIMITIVE
    log = np.zeros(256, np.int64)
    log[exp] = np.arange(255)
    return exp, log


GF_EXP, GF_LOG = _gf_tables()
GF_MUL = GF_EXP[(GF_LOG[:, None] + GF_LOG[None, :]) % 255].astype(np.uint8)  # GF_MUL[a, b] = a * b
GF_MUL[0, :] = GF_MUL[:, 0] = 0


def rs_generator(nsym: int) -> np.ndarray:
    """uint8 (nsym + 1,), highest degree first: the product of (x + 2^i) for i < nsym."""
    gen = np.ones(1, np.uint8)
    for i in range(nsym):
        gen = np.append(gen, 0) ^ np.append(0, GF_MUL[gen, GF_EXP[i]])
    return gen


def rs_parity_bytes(blocks: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """(K, nsym) uint8: the parity bytes of each row of blocks (K, k), by the encoder's shift register."""
    register = np.zeros((len(blocks), len(gen) - 1), np.uint8)
    for column in blocks.T:
        feedback = column ^ register[:, 0]
        register = np.roll(register, -1, axis=1)
        register[:, -1] = 0
        register ^= GF_MUL[feedback[:, None], gen[1:]]
    return register


def rs_syndromes(codewords: np.ndarray, nsym: int) -> np.ndarray:
    """(K, nsym) uint8: codeword(2^i) for i < nsym for each row of codewords (K, length); all zero for a codeword."""
    roots = GF_EXP[:nsym]
    syndromes = np.zeros((len(codewords), nsym), np.uint8)
    for column in codewords.T:
        syndromes = GF_MUL[syndromes, roots] ^ column[:, None]
    return syndromes


@lru_cache(maxsize=64)
def _interleave_order(n_bits: int, depth: int) -> np.ndarray:
    """out[j] = in[order[j]]."""
    depth = max(1, min(depth, n_bits))
    columns = -(-n_bits // depth)
    cells = np.arange(depth * columns).reshape(depth, columns).T.ravel()
    order = cells[cells < n_bits]
    order.flags.writeable = False
    return order


def interleave(bits: np.ndarray, depth: int) -> np.ndarray:
    """The bits (..., n_bits), interleaved along the last axis."""
    return bits[..., _interleave_order(bits.shape[-1], depth)]


def deinterleave(bits: np.ndarray, depth: int) -> np.ndarray:
    """The inverse of interleave."""
    out = np.empty_like(bits)
    out[..., _interleave_order(bits.shape[-1], depth)] = bits
    return out


@dataclass(frozen=True)
class Decoded:
    payloads: np.ndarray  # (N, n) uint8; a block that could not be corrected keeps its data bytes as received
    block_ok: np.ndarray  # (N, n_blocks) bool: the Reed-Solomon block decoded (no blocks without Reed-Solomon)
    corrected_bytes: np.ndarray  # (N,) int64: bytes (data and parity) the decoder changed in the blocks it decoded
    missing: np.ndarray  # (N, n) bool: message bytes lost on the air (erased) and not recovered: the edge fills them


@dataclass(frozen=True)
class Fec:
    """Reed-Solomon with rs_parity parity bytes per block (0: none), then a bit interleaver of
    interleave_depth rows (1: none)."""
    rs_parity: int = 0
    interleave_depth: int = 1

    def __post_init__(self):
        if not 0 <= self.rs_parity <= RS_MAX_PARITY:
            raise ValueError(f"Reed-Solomon parity must be within [0, {RS_MAX_PARITY}], got {self.rs_parity}")
        if self.interleave_depth < 1:
            raise ValueError(f"interleave depth must be at least 1, got {self.interleave_depth}")

    @property
    def spec(self) -> str:
        """The command-line form, which parse_fec reads back."""
        parts = ([f"rs:{self.rs_parity}"] if self.rs_parity else []) + \
            ([f"interleave={self.interleave_depth}"] if self.interleave_depth > 1 else [])
        return ",".join(parts) or "none"

    def describe(self) -> dict:
        return {"fec": self.spec, "rs_parity": self.rs_parity, "interleave_depth": self.interleave_depth}

    @property
    def block_data_bytes(self) -> int:
        return RS_BLOCK_BYTES - self.rs_parity

    def n_blocks(self, n: int) -> int:
        """Reed-Solomon blocks for an n-byte message (0 without Reed-Solomon)."""
        return -(-n // self.block_data_bytes) if self.rs_parity else 0

    def encoded_bytes(self, n: int) -> int:
        return n + self.rs_parity * self.n_blocks(n)

    def message_bytes(self, m: int) -> int:
        """The n with encoded_bytes(n) == m; ValueError if there is none."""
        if not self.rs_parity:
            return m
        full_blocks, rest = divmod(m, RS_BLOCK_BYTES)
        if 0 < rest <= self.rs_parity:
            raise ValueError(f"{m} bytes is no length {self.spec} encodes to: a last block of {rest} bytes "
                             f"holds no data beyond its {self.rs_parity} parity bytes")
        return full_blocks * self.block_data_bytes + max(rest - self.rs_parity, 0)

    def encode(self, payloads: np.ndarray) -> np.ndarray:
        """(N, encoded_bytes(n)) uint8: the bytes on the air for payloads (N, n) uint8."""
        payloads = _as_batch(payloads, np.uint8, "payloads")
        codewords = self._rs_encode(payloads) if self.rs_parity else payloads
        return self._interleave_bytes(codewords)

    def decode(self, received: np.ndarray, erased: np.ndarray | None = None) -> Decoded:
        """received (N, m) uint8 as it came off the air; erased (N, m) bool marks the bytes lost on the air
        (their values are ignored), None for none. Without Reed-Solomon it only deinterleaves."""
        received = _as_batch(received, np.uint8, "received")
        n = self.message_bytes(received.shape[1])
        codewords = self._deinterleave_bytes(received)
        if erased is None:
            erased = np.zeros(received.shape, bool)
        erased = _as_batch(erased, bool, "erased")
        if erased.shape != received.shape:
            raise ValueError(f"erased has shape {erased.shape}, received {received.shape}")
        if not self.rs_parity:
            return Decoded(codewords, np.ones((len(received), 0), bool), np.zeros(len(received), np.int64),
                           self._erased_codeword_bytes(erased))
        return self._rs_decode(codewords, self._erased_codeword_bytes(erased), n)

    def _block_masks(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(data (n_blocks * k,), codeword (n_blocks * 255,)) bool: which cells of the blocks laid end to end,
        the shortened last block padded with leading zeros to full length, hold message bytes."""
        first = self._first_cells(n)
        data = np.arange(self.block_data_bytes) >= first[:, None]
        codeword = np.arange(RS_BLOCK_BYTES) >= first[:, None]
        return data.ravel(), codeword.ravel()

    def _rs_encode(self, payloads: np.ndarray) -> np.ndarray:
        n_messages, n = payloads.shape
        data_mask, codeword_mask = self._block_masks(n)
        data = np.zeros((n_messages, data_mask.size), np.uint8)
        data[:, data_mask] = payloads
        data = data.reshape(-1, self.block_data_bytes)
        blocks = np.concatenate([data, rs_parity_bytes(data, rs_generator(self.rs_parity))], axis=1)
        return blocks.reshape(n_messages, codeword_mask.size)[:, codeword_mask]

    def _rs_decode(self, codewords: np.ndarray, erased: np.ndarray, n: int) -> Decoded:
        n_messages = len(codewords)
        data_mask, codeword_mask = self._block_masks(n)
        received = np.zeros((n_messages, codeword_mask.size), np.uint8)
        received[:, codeword_mask] = codewords
        received = received.reshape(-1, RS_BLOCK_BYTES)
        erasures = np.zeros(received.shape, bool)
        erasures.reshape(n_messages, codeword_mask.size)[:, codeword_mask] = erased

        ok = erasures.sum(axis=1) <= self.rs_parity
        # A block that arrived as a codeword is taken as it is: with no errors and at most rs_parity
        # erasures it is the one sent. Only the others go through reedsolo, which is slow.
        damaged = rs_syndromes(received, self.rs_parity).any(axis=1)
        fixed = received.copy()
        codec = reedsolo.RSCodec(self.rs_parity)
        first_cells = np.tile(self._first_cells(n), n_messages)
        for block in np.flatnonzero(ok & damaged):
            start = first_cells[block]
            ok[block] = _correct_block(codec, fixed[block, start:], erasures[block, start:])

        n_blocks = self.n_blocks(n)
        payloads = fixed[:, :self.block_data_bytes].reshape(n_messages, data_mask.size)[:, data_mask]
        corrected = (fixed != received).reshape(n_messages, codeword_mask.size).sum(axis=1)
        unrecovered = erasures[:, :self.block_data_bytes] & ~ok[:, None]
        missing = unrecovered.reshape(n_messages, data_mask.size)[:, data_mask]
        return Decoded(payloads, ok.reshape(n_messages, n_blocks), corrected, missing)

    def _first_cells(self, n: int) -> np.ndarray:
        """(n_blocks,): where each block starts in its 255 cells; after the padding for the shortened last block."""
        first = np.zeros(self.n_blocks(n), np.int64)
        if first.size:
            first[-1] = first.size * self.block_data_bytes - n
        return first

    def _erased_codeword_bytes(self, erased: np.ndarray) -> np.ndarray:
        """Which bytes before the interleaver lost any of their bits on the air."""
        bits = deinterleave(np.repeat(erased, 8, axis=1), self.interleave_depth)
        return bits.reshape(erased.shape[0], -1, 8).any(axis=2)

    def _interleave_bytes(self, data: np.ndarray) -> np.ndarray:
        if self.interleave_depth == 1:
            return data
        return np.packbits(interleave(np.unpackbits(data, axis=1), self.interleave_depth), axis=1)

    def _deinterleave_bytes(self, data: np.ndarray) -> np.ndarray:
        if self.interleave_depth == 1:
            return data.copy()
        return np.packbits(deinterleave(np.unpackbits(data, axis=1), self.interleave_depth), axis=1)


def _correct_block(codec: reedsolo.RSCodec, block: np.ndarray, erasures: np.ndarray) -> bool:
    """Corrects the block in place; False, leaving it as it is, if it cannot."""
    try:
        _, corrected, _ = codec.decode(bytearray(block), erase_pos=np.flatnonzero(erasures).tolist())
    except reedsolo.ReedSolomonError:
        return False
    block[:] = np.frombuffer(bytes(corrected), np.uint8)
    return True


def _as_batch(array: np.ndarray, dtype, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D (messages, bytes), got shape {array.shape}")
    return array.astype(dtype, copy=False)


def largest_message(fec: Fec, budget_bytes: int) -> int:
    """The largest n with fec.encoded_bytes(n) <= budget_bytes."""
    if budget_bytes < 0:
        raise ValueError(f"budget must be at least 0 bytes, got {budget_bytes}")
    if not fec.rs_parity:
        return budget_bytes
    full_blocks, rest = divmod(budget_bytes, RS_BLOCK_BYTES)
    return full_blocks * fec.block_data_bytes + max(rest - fec.rs_parity, 0)


def parse_fec(spec: str) -> Fec:
    """A Fec from its command-line form, e.g. none, rs:16, rs:16,interleave=8 or interleave=8."""
    def fail(problem: str) -> NoReturn:
        raise RadioError(f"fec '{spec}': {problem}; expected {FEC_SYNTAX}")

    def whole_number(what: str, text: str, low: int, high: int | None = None) -> int:
        try:
            value = int(text)
        except ValueError:
            fail(f"{what} '{text.strip()}' is not a whole number")
        if value < low or (high is not None and value > high):
            fail(f"{what} must be {f'within {low}..{high}' if high is not None else f'at least {low}'}, got {value}")
        return value

    parts = [part.strip().lower() for part in spec.split(",")]
    if parts == ["none"]:
        return Fec()
    settings: dict[str, int] = {}
    for part in parts:
        if part.startswith("rs:") and "rs" not in settings:
            settings["rs"] = whole_number("Reed-Solomon parity bytes", part[3:], 1, RS_MAX_PARITY)
        elif part.startswith("interleave=") and "interleave" not in settings:
            settings["interleave"] = whole_number("interleave depth", part[len("interleave="):], 1)
        elif part == "none":
            fail("'none' goes alone")
        elif part.split(":")[0].split("=")[0] in settings:
            fail(f"'{part}' repeats a setting")
        else:
            fail(f"'{part}' is not a setting" if part else "an empty setting")
    return Fec(settings.get("rs", 0), settings.get("interleave", 1))

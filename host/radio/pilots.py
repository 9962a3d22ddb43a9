"""Pilot-based BER estimation at the receiver: known pilot bits ride in the radio frame with the data.

The radio frame is a payload's data bits with `n_bits` pilot bits spread evenly among them. The
channel flips bits over the whole frame; the receiver takes the data bits back out, counts the
pilot bits that arrived wrong, and estimates each frame's BER from them for the BER-aware decoder.

The pilots are interleaved rather than appended so that a burst (Gilbert-Elliott) hits pilots as
often as data: appended pilots sample only the frame's tail, and miss bursts that hit the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import numpy as np

from .channel import Channel
from .errors import RadioError

PILOT_SEED = 0x5E3A  # both ends draw the pilot sequence from this seed

SYNTAX = "<pilot bits per frame>[,window=<frames>]"


@dataclass(frozen=True)
class Pilots:
    """n_bits pilot bits per frame; the BER estimate pools the pilots of the last `window` frames."""
    n_bits: int
    window: int = 1

    def __post_init__(self):
        if self.n_bits < 1:
            raise ValueError(f"pilot bits per frame must be at least 1, got {self.n_bits}")
        if self.window < 1:
            raise ValueError(f"pilot window must be at least 1 frame, got {self.window}")

    def describe(self) -> dict:
        return {"pilot_bits": self.n_bits, "pilot_window": self.window}


def parse_pilots(spec: str) -> Pilots:
    """Pilots from their command-line form, e.g. 64 or 64,window=16."""
    def fail(problem: str) -> NoReturn:
        raise RadioError(f"pilots '{spec}': {problem}; expected {SYNTAX}")

    def positive_int(what: str, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            fail(f"{what} '{text.strip()}' is not a whole number")
        if value < 1:
            fail(f"{what} must be at least 1, got {value}")
        return value

    first, *options = spec.split(",")
    if not first.strip():
        fail("no pilot bit count given")
    n_bits = positive_int("pilot bit count", first)
    if len(options) > 1:
        fail("more than one option given")
    window = 1
    for option in options:
        key, equals, value = option.partition("=")
        if key.strip() != "window" or not equals:
            fail(f"unknown option '{option.strip()}'")
        window = positive_int("window", value)
    return Pilots(n_bits, window)


def pilot_sequence(n_bits: int) -> np.ndarray:
    """The known pilot bits, bool (n_bits,)."""
    return np.random.default_rng(PILOT_SEED).integers(0, 2, n_bits).astype(bool)


def pilot_mask(n_data_bits: int, n_pilot_bits: int) -> np.ndarray:
    """bool (n_data_bits + n_pilot_bits,): True where a pilot sits, evenly spaced from half a spacing in."""
    frame_bits = n_data_bits + n_pilot_bits
    mask = np.zeros(frame_bits, bool)
    mask[(2 * np.arange(n_pilot_bits) + 1) * frame_bits // (2 * n_pilot_bits)] = True
    return mask


def estimate_ber(pilot_errors: np.ndarray, n_pilot_bits: int, window: int = 1) -> np.ndarray:
    """Per frame, the posterior mean BER under a Jeffreys Beta(1/2, 1/2) prior given the pilot errors of this
    frame and the window - 1 frames before it, clipped to [0, 0.5]: never 0 (a clean window does not prove
    a clean channel); its bias toward 1/2, (1/2 - BER) / (pilot bits in the window + 1), shrinks as the window grows."""
    pilot_errors = np.asarray(pilot_errors, np.int64)
    running = np.concatenate([[0], np.cumsum(pilot_errors)])
    end = np.arange(1, len(pilot_errors) + 1)
    start = np.maximum(end - window, 0)
    bits = (end - start) * n_pilot_bits
    return np.clip((running[end] - running[start] + 0.5) / (bits + 1), 0.0, 0.5)


def send_with_pilots(payloads: np.ndarray, channel: Channel, rng: np.random.Generator, n_bits: int | None,
                     pilots: Pilots) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(received payloads, BER estimated from the pilots per frame, BER the channel tells per frame).

    Like channel.apply_channel, but each frame carries pilots.n_bits pilot bits among its data bits and
    the channel flips bits of the whole frame. payloads: (N, bytes) uint8; n_bits: how many leading bits
    of each payload carry data, most significant bit of each byte first (all by default); padding bits
    are left alone. Frames go in payload order (the estimate's window looks back along it).
    """
    n_frames, n_bytes = payloads.shape
    n_bits = n_bytes * 8 if n_bits is None else n_bits
    if not 0 <= n_bits <= n_bytes * 8:
        raise ValueError(f"n_bits must be within [0, {n_bytes * 8}], got {n_bits}")
    is_pilot = pilot_mask(n_bits, pilots.n_bits)
    known = pilot_sequence(pilots.n_bits)
    bits = np.unpackbits(payloads, axis=-1).astype(bool)

    sent = np.empty((n_frames, is_pilot.size), bool)
    sent[:, is_pilot] = known
    sent[:, ~is_pilot] = bits[:, :n_bits]
    flips, channel_ber = channel.sample(n_frames, is_pilot.size, rng)
    arrived = sent ^ flips

    bits[:, :n_bits] = arrived[:, ~is_pilot]
    pilot_errors = (arrived[:, is_pilot] != known).sum(axis=1)
    return np.packbits(bits, axis=-1), estimate_ber(pilot_errors, pilots.n_bits, pilots.window), channel_ber

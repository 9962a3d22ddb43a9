"""The simulated radio channel between device and edge: bit flips on the code payload.

A channel model gives, for a batch of frames, which bits flip and the BER the receiver's decoder
is told for each frame. Every model draws only from the rng it is handed, so a seed fixes the flips.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol

import numpy as np

from .errors import RadioError


DEFAULT_BERS = (0.0, 0.001, 0.01, 0.05)  # the BERs a run is scored at unless told otherwise


class Channel(Protocol):
    name: str

    def describe(self) -> dict:
        """JSON-able parameters, including the name."""

    def sample(self, n_frames: int, n_bits: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(flips: bool (n_frames, n_bits), ber: float64 (n_frames,)): ber is each frame's BER as the
        receiver's decoder is told it (the mean BER for a stationary model, the frame's own for
        dynamic and trace models)."""


def _check_probability(what: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{what} must be within [0, 1], got {p}")


@dataclass(frozen=True)
class IidChannel:
    """Each bit flips independently with probability `ber`."""
    ber: float
    snr_db: float | None = None  # only recorded, when the BER came from an SNR
    name = "iid"

    def __post_init__(self):
        _check_probability("BER", self.ber)

    def describe(self) -> dict:
        extra = {} if self.snr_db is None else {"snr_db": self.snr_db}
        return {"name": self.name, "ber": self.ber, **extra}

    def sample(self, n_frames, n_bits, rng):
        return rng.random((n_frames, n_bits)) < self.ber, np.full(n_frames, self.ber, np.float64)


@dataclass(frozen=True)
class GilbertElliottChannel:
    """Two-state (good/bad) Markov chain over the bit stream, i.i.d. flips at the state's BER.

    A sample() call is one stream: frame after frame, the state carries over frame boundaries.
    """
    p_good_to_bad: float
    p_bad_to_good: float
    ber_good: float = 0.0
    ber_bad: float = 0.5
    name = "gilbert-elliott"

    def __post_init__(self):
        _check_probability("p_good_to_bad", self.p_good_to_bad)
        _check_probability("ber_good", self.ber_good)
        _check_probability("ber_bad", self.ber_bad)
        if not 0.0 < self.p_bad_to_good <= 1.0:
            raise ValueError(f"p_bad_to_good must be within (0, 1], got {self.p_bad_to_good}")

    @classmethod
    def from_mean(cls, ber: float, mean_burst_length: float, ber_bad: float = 0.5) -> GilbertElliottChannel:
        """The channel with ber_good = 0 whose mean BER is `ber` and whose bad-state bursts last
        `mean_burst_length` bits on average."""
        if not 1.0 <= mean_burst_length < math.inf:
            raise ValueError(f"mean burst length must be at least 1 bit, got {mean_burst_length}")
        if not 0.0 <= ber < ber_bad:
            raise ValueError(f"mean BER must be within [0, ber_bad = {ber_bad}), got {ber}")
        p_bad_to_good = 1.0 / mean_burst_length
        bad_fraction = ber / ber_bad
        p_good_to_bad = bad_fraction * p_bad_to_good / (1.0 - bad_fraction)
        if p_good_to_bad > 1.0:
            raise ValueError(f"mean BER {ber} is too high for bursts of {mean_burst_length} bits at BER {ber_bad}")
        return cls(p_good_to_bad, p_bad_to_good, 0.0, ber_bad)

    @property
    def bad_fraction(self) -> float:
        """Stationary probability of the bad state."""
        return self.p_good_to_bad / (self.p_good_to_bad + self.p_bad_to_good)

    @property
    def mean_ber(self) -> float:
        return self.bad_fraction * self.ber_bad + (1.0 - self.bad_fraction) * self.ber_good

    @property
    def mean_burst_length(self) -> float:
        return 1.0 / self.p_bad_to_good

    def describe(self) -> dict:
        return {"name": self.name, "p_good_to_bad": self.p_good_to_bad, "p_bad_to_good": self.p_bad_to_good,
                "ber_good": self.ber_good, "ber_bad": self.ber_bad,
                "mean_ber": self.mean_ber, "mean_burst_length": self.mean_burst_length}

    def sample_states(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The chain's states over n bits, True = bad; the first drawn from the stationary distribution."""
        if n == 0 or self.p_good_to_bad == 0.0:
            return np.zeros(n, bool)
        # Sojourns are geometric, and memoryless, so the first one needs no special case.
        first_bad = rng.random() < self.bad_fraction
        mean_pair = 1.0 / self.p_good_to_bad + 1.0 / self.p_bad_to_good
        lengths, covered = [], 0
        while covered < n:
            n_pairs = int((n - covered) / mean_pair * 1.1) + 16
            good = rng.geometric(self.p_good_to_bad, n_pairs)
            bad = rng.geometric(self.p_bad_to_good, n_pairs)
            pairs = np.stack([bad, good] if first_bad else [good, bad], axis=1).ravel()
            lengths.append(pairs)
            covered += int(pairs.sum())
        lengths = np.concatenate(lengths)
        n_runs = int(np.searchsorted(np.cumsum(lengths), n)) + 1
        run_is_bad = (np.arange(n_runs) % 2 == 0) == first_bad
        return np.repeat(run_is_bad, np.minimum(lengths[:n_runs], n))[:n]

    def sample(self, n_frames, n_bits, rng):
        states = self.sample_states(n_frames * n_bits, rng)
        flips = rng.random(states.size) < np.where(states, self.ber_bad, self.ber_good)
        return flips.reshape(n_frames, n_bits), np.full(n_frames, self.mean_ber, np.float64)


@dataclass(frozen=True)
class DynamicBerChannel:
    """Each frame draws its BER uniformly from [ber_low, ber_high], then flips i.i.d. at it."""
    ber_low: float
    ber_high: float
    name = "dynamic"

    def __post_init__(self):
        _check_probability("ber_low", self.ber_low)
        _check_probability("ber_high", self.ber_high)
        if self.ber_low > self.ber_high:
            raise ValueError(f"ber_low {self.ber_low} is above ber_high {self.ber_high}")

    def describe(self) -> dict:
        return {"name": self.name, "ber_low": self.ber_low, "ber_high": self.ber_high}

    def sample(self, n_frames, n_bits, rng):
        ber = rng.uniform(self.ber_low, self.ber_high, n_frames)
        return rng.random((n_frames, n_bits)) < ber[:, None], ber


@dataclass(frozen=True)
class TraceChannel:
    """Frame i flips i.i.d. at bers[i % len(bers)], frames numbered from 0 in each sample() call."""
    bers: tuple[float, ...]
    source: str
    name = "trace"

    def __post_init__(self):
        if not self.bers:
            raise ValueError("a BER trace needs at least one BER")
        for ber in self.bers:
            _check_probability("BER", ber)

    @classmethod
    def from_file(cls, path: str | Path) -> TraceChannel:
        """One BER per line; blank lines and '#' comments are ignored."""
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise RadioError(f"cannot read BER trace '{path}': {e}") from e
        bers = []
        for number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                ber = float(text)
            except ValueError:
                raise RadioError(f"BER trace '{path}' line {number}: '{text}' is not a number "
                                  "(expected one BER per line, '#' starts a comment)") from None
            if not 0.0 <= ber <= 0.5:
                raise RadioError(f"BER trace '{path}' line {number}: BER {text} is not within [0, 0.5]")
            bers.append(ber)
        if not bers:
            raise RadioError(f"BER trace '{path}' has no BERs (expected one BER per line, '#' starts a comment)")
        return cls(tuple(bers), str(path))

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source, "n_bers": len(self.bers),
                "mean_ber": float(np.mean(self.bers))}

    def sample(self, n_frames, n_bits, rng):
        ber = np.resize(np.asarray(self.bers, np.float64), n_frames)
        return rng.random((n_frames, n_bits)) < ber[:, None], ber


def bpsk_ber(snr_db: float) -> float:
    """BER of BPSK over AWGN at this Eb/N0."""
    return 0.5 * math.erfc(math.sqrt(10.0 ** (snr_db / 10.0)))


SYNTAX = {
    "iid": "iid:<ber>",
    "ge": "ge:<mean ber>,<mean burst length in bits>[,<ber in the bad state>]",
    "dynamic": "dynamic:<lowest ber>,<highest ber>",
    "trace": "trace:<file with one ber per line>",
    "bpsk-snr": "bpsk-snr:<Eb/N0 in dB>",
}


def parse_channel(spec: str) -> Channel:
    """A channel from its command-line form, e.g. iid:0.01, ge:0.01,8, dynamic:0.0001,0.05,
    trace:bers.txt, bpsk-snr:6."""
    model, _, args = spec.partition(":")
    model = model.strip().lower()
    if model not in SYNTAX:
        raise RadioError(f"unknown channel '{spec}': expected one of {', '.join(SYNTAX.values())}")

    def fail(problem: str) -> NoReturn:
        raise RadioError(f"channel '{spec}': {problem}; expected {SYNTAX[model]}")

    if not args.strip():
        fail("no parameters given")
    if model == "trace":
        return TraceChannel.from_file(args.strip())
    values = []
    for text in args.split(","):
        try:
            values.append(float(text))
        except ValueError:
            fail(f"'{text.strip()}' is not a number")
    counts = {"iid": (1,), "ge": (2, 3), "dynamic": (2,), "bpsk-snr": (1,)}[model]
    if len(values) not in counts:
        fail(f"needs {' or '.join(map(str, counts))} comma-separated value(s), got {len(values)}")

    def check_ber(what: str, ber: float):
        if not 0.0 <= ber <= 0.5:
            fail(f"{what} {ber} is not within [0, 0.5]")

    if model == "iid":
        check_ber("BER", values[0])
        return IidChannel(values[0])
    if model == "bpsk-snr":
        if not math.isfinite(values[0]):
            fail(f"SNR {values[0]} dB is not finite")
        return IidChannel(bpsk_ber(values[0]), snr_db=values[0])
    if model == "dynamic":
        low, high = values
        check_ber("lowest BER", low)
        check_ber("highest BER", high)
        if low > high:
            fail(f"lowest BER {low} is above highest BER {high}")
        return DynamicBerChannel(low, high)
    ber, burst, ber_bad = (*values, 0.5)[:3]
    check_ber("mean BER", ber)
    check_ber("bad-state BER", ber_bad)
    try:
        return GilbertElliottChannel.from_mean(ber, burst, ber_bad)
    except ValueError as e:
        fail(str(e))


def apply_channel(payloads: np.ndarray, channel: Channel, rng: np.random.Generator,
                  n_bits: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(received payloads, BER told to the receiver per frame).

    payloads: (N, bytes) uint8. n_bits: how many leading bits of each payload carry data, most
    significant bit of each byte first (the padding bits of the last byte are left alone); all by default.
    """
    n_frames, n_bytes = payloads.shape
    n_bits = n_bytes * 8 if n_bits is None else n_bits
    if not 0 <= n_bits <= n_bytes * 8:
        raise ValueError(f"n_bits must be within [0, {n_bytes * 8}], got {n_bits}")
    flips, ber = channel.sample(n_frames, n_bits, rng)
    mask = np.zeros((n_frames, n_bytes * 8), bool)
    mask[:, :n_bits] = flips
    return payloads ^ np.packbits(mask, axis=-1), ber


def flip_bits_iid(payloads: np.ndarray, ber: float, rng: np.random.Generator, n_bits: int | None = None) -> np.ndarray:
    """Flip each payload bit independently with probability `ber` (see apply_channel)."""
    return apply_channel(payloads, IidChannel(ber), rng, n_bits)[0]

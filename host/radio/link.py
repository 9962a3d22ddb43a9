"""The link layer between the device's bytes and the edge decoder: packets, CRC and retransmission.

A message (one image's code bytes) goes over the air in packets of at most `max_payload_bytes`. On
air a packet is its sync bits (preamble, sync/access word, PHY header: what the receiver needs to
find the packet), its MAC/link header, its payload and its CRC, in that order; the channel can flip
any of them. A bit error in the sync or header always loses the packet: the receiver cannot find or
parse it. Beyond that the link works in one of two CRC modes:

- CRC on (CRC-drop): the receiver drops a packet with any bit error, so what arrives is exact.
- CRC off: bit errors in the payload reach the decoder (and errors in the CRC bits do not matter).

On top of the channel, `packet_loss` loses each transmission i.i.d. (to replay a real link's loss
rate), and ARQ sends a lost packet again up to `max_retransmissions` times. With the CRC off only
packets lost to a sync/header error or to `packet_loss` are noticed, and so resent.

Air bytes count every transmission of every packet, payload plus overhead; ACK frames go downlink
and are not counted, but their wait is: airtime is air bits / bit rate plus the ACK timeout per
retransmission.

Preset figures: Bluetooth Core Spec 5.x Vol 6 Part B (LE 1M uncoded PHY, LL data PDU); IEEE
802.15.4-2020 (2.4 GHz O-QPSK PHY, MAC frame format, macAckWaitDuration); Semtech SX1276 datasheet
(LoRa modem) and LoRaWAN 1.0.x Specification + Regional Parameters (EU868).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NoReturn

import numpy as np

from .channel import Channel
from .errors import RadioError


@dataclass(frozen=True)
class Radio:
    """One radio's packet format and speed; all sizes in bytes."""
    name: str
    max_payload_bytes: int
    sync_bytes: int  # preamble + sync/access word + PHY header
    header_bytes: int  # MAC/link header
    crc_bytes: int
    bit_rate: float  # bit/s
    ack_timeout_s: float  # the wait before a retransmission is sent

    def __post_init__(self):
        if self.max_payload_bytes < 1:
            raise ValueError(f"max payload must be at least 1 byte, got {self.max_payload_bytes}")
        for what, size in (("sync", self.sync_bytes), ("header", self.header_bytes), ("CRC", self.crc_bytes)):
            if size < 0:
                raise ValueError(f"{what} bytes must not be negative, got {size}")
        if not 0.0 < self.bit_rate < math.inf:
            raise ValueError(f"bit rate must be positive and finite, got {self.bit_rate}")
        if not 0.0 <= self.ack_timeout_s < math.inf:
            raise ValueError(f"ACK timeout must be non-negative and finite, got {self.ack_timeout_s}")

    @property
    def overhead_bytes(self) -> int:
        return self.sync_bytes + self.header_bytes + self.crc_bytes

    @property
    def head_bits(self) -> int:
        """The leading bits whose error loses the packet in any CRC mode: sync and header."""
        return (self.sync_bytes + self.header_bytes) * 8


RADIOS = {
    # Bluetooth 5 Vol 6 Part B 2.1, 2.4, 4.1.1: LE 1M, payload 251 B (Data Length Extension), preamble 1 + access
    # address 4, LL header 2, CRC 3; ACK wait = T_IFS 150 us + empty PDU 80 us + T_IFS 150 us.
    "ble": Radio("ble", 251, 5, 2, 3, 1e6, 380e-6),
    # IEEE 802.15.4 2.4 GHz O-QPSK 250 kbit/s: SHR 5 (preamble 4 + SFD 1) + PHR 1; MAC header 9 (frame control 2,
    # seq 1, PAN ID 2, short dst 2 + src 2, PAN ID compression); FCS 2; payload aMaxPHYPacketSize 127 - 9 - 2;
    # ACK wait = macAckWaitDuration 54 symbols x 16 us.
    "802.15.4": Radio("802.15.4", 116, 6, 9, 2, 250e3, 864e-6),
    # LoRa SF7/125 kHz/CR 4/5 = 5469 bit/s (SX1276 datasheet); preamble 12.25 symbols x 7 bits ~ 11 B + explicit PHY
    # header ~ 3 B; LoRaWAN MHDR 1 + FHDR 7 + FPort 1 + MIC 4 = 13; payload CRC 2; max FRMPayload 222 B (EU868 DR5);
    # ACK wait = RECEIVE_DELAY1 1 s.
    "lora": Radio("lora", 222, 14, 13, 2, 5469.0, 1.0),
}


@dataclass(frozen=True)
class Link:
    """How messages cross the radio: CRC mode, extra i.i.d. packet loss, and ARQ retransmissions."""
    radio: Radio
    crc: bool = True  # True: CRC-drop; False: CRC off, payload bit errors reach the decoder
    packet_loss: float = 0.0  # probability a transmission is lost, on top of the channel
    max_retransmissions: int = 0

    def __post_init__(self):
        if not 0.0 <= self.packet_loss <= 1.0:
            raise ValueError(f"packet loss must be within [0, 1], got {self.packet_loss}")
        if self.max_retransmissions < 0:
            raise ValueError(f"max retransmissions must not be negative, got {self.max_retransmissions}")

    def describe(self) -> dict:
        radio = {**asdict(self.radio), "overhead_bytes": self.radio.overhead_bytes}
        return {"radio": radio, "crc": self.crc, "packet_loss": self.packet_loss,
                "max_retransmissions": self.max_retransmissions}

    def packet_sizes(self, n_bytes: int) -> list[int]:
        """Payload bytes of each packet of an n_bytes message: full packets, then the remainder."""
        if n_bytes < 0:
            raise ValueError(f"message size must not be negative, got {n_bytes}")
        full, rest = divmod(n_bytes, self.radio.max_payload_bytes)
        return [self.radio.max_payload_bytes] * full + ([rest] if rest else [])

    def air_bytes(self, n_bytes: int) -> int:
        """Bytes on air for an n_bytes message sent once, overhead included."""
        return n_bytes + len(self.packet_sizes(n_bytes)) * self.radio.overhead_bytes

    def largest_message(self, air_bytes: int) -> int:
        """The largest message whose air_bytes() fits in `air_bytes` (0 if none)."""
        full_packet = self.radio.max_payload_bytes + self.radio.overhead_bytes
        n_full, rest = divmod(max(air_bytes, 0), full_packet)
        return n_full * self.radio.max_payload_bytes + max(rest - self.radio.overhead_bytes, 0)


@dataclass(frozen=True)
class Delivery:
    """What arrived of N messages of B bytes each, split into n_packets packets."""
    received: np.ndarray  # (N, B) uint8, lost bytes zero
    lost: np.ndarray  # (N, B) bool: bytes of packets that never arrived
    attempts: np.ndarray  # (N, n_packets) int: transmissions of each packet, 1 = no retransmission
    air_bytes: np.ndarray  # (N,) int: all transmissions, payload + overhead
    airtime_s: np.ndarray  # (N,) float: air bits / bit rate + ACK timeout per retransmission
    packets_lost: np.ndarray  # (N,) int: packets that never arrived
    ber: np.ndarray  # (N,) float64: mean BER the channel told for the message's first transmissions

    @property
    def packet_loss_rate(self) -> float:
        """Packets that never arrived / packets, over all messages (0 if there are none)."""
        return float(self.packets_lost.sum() / self.attempts.size) if self.attempts.size else 0.0


@dataclass(frozen=True)
class _Round:
    """One transmission of some packets: which arrived, their payload bit flips, the BER told per packet."""
    arrived: np.ndarray  # (rows,) bool
    payload_flips: np.ndarray  # (rows, largest payload bits) bool, zero beyond each packet's payload
    ber: np.ndarray  # (rows,) float64


def _transmit(sizes: np.ndarray, largest: int, link: Link, channel: Channel, rng: np.random.Generator) -> _Round:
    """Send packets with these payload sizes once, in order, as one stream through the channel."""
    radio = link.radio
    packet_bits = (sizes + radio.overhead_bytes) * 8
    flips, ber = channel.sample(sizes.size, (largest + radio.overhead_bytes) * 8, rng)
    flips &= np.arange(flips.shape[1]) < packet_bits[:, None]
    damaged = flips.any(axis=1) if link.crc else flips[:, :radio.head_bits].any(axis=1)
    dropped = rng.random(sizes.size) < link.packet_loss
    payload_flips = flips[:, radio.head_bits:radio.head_bits + largest * 8]
    payload_flips &= np.arange(largest * 8) < sizes[:, None] * 8
    return _Round(~(damaged | dropped), payload_flips, ber)


def _check_messages(payloads: np.ndarray) -> np.ndarray:
    payloads = np.asarray(payloads)
    if payloads.ndim != 2 or payloads.dtype != np.uint8:
        raise ValueError(f"payloads must be a 2-D uint8 array, got {payloads.dtype} {payloads.shape}")
    return payloads


def send(payloads: np.ndarray, link: Link, channel: Channel, rng: np.random.Generator) -> Delivery:
    """Send each row of payloads (N, B) uint8 as one message of link.packet_sizes(B) packets.

    Each round sends every packet still missing, image after image and packet after packet, as one
    channel stream (so a burst runs on into the next packets); ARQ repeats the round for lost packets.
    """
    payloads = _check_messages(payloads)
    n_images, n_bytes = payloads.shape
    sizes = np.asarray(link.packet_sizes(n_bytes), np.int64)
    largest = int(sizes.max(initial=0))
    attempts = np.zeros((n_images, sizes.size), np.int64)
    arrived = np.zeros((n_images, sizes.size), bool)
    payload_flips = np.zeros((n_images, sizes.size, largest * 8), bool)
    ber = None
    for _ in range(link.max_retransmissions + 1):
        images, packets = np.nonzero(~arrived)
        if images.size == 0:
            break
        attempts[images, packets] += 1
        sent = _transmit(sizes[packets], largest, link, channel, rng)
        if ber is None:  # the first round sends every packet of every image
            ber = sent.ber.reshape(n_images, sizes.size).mean(axis=1)
        arrived[images[sent.arrived], packets[sent.arrived]] = True
        payload_flips[images[sent.arrived], packets[sent.arrived]] = sent.payload_flips[sent.arrived]
    if ber is None:  # no packets: report the BER the channel tells for the images all the same
        ber = channel.sample(n_images, 0, rng)[1]

    lost = np.repeat(~arrived, sizes, axis=1)
    flip_bits = payload_flips.reshape(n_images, sizes.size * largest * 8)[:, :n_bytes * 8]
    received = np.where(lost, np.uint8(0), payloads ^ np.packbits(flip_bits, axis=-1)).astype(np.uint8)
    air_bytes = (attempts * (sizes + link.radio.overhead_bytes)).sum(axis=1)
    retransmissions = (attempts - 1).sum(axis=1)
    airtime = air_bytes * 8 / link.radio.bit_rate + retransmissions * link.radio.ack_timeout_s
    return Delivery(received, lost, attempts, air_bytes, airtime, (~arrived).sum(axis=1),
                    np.asarray(ber, np.float64))


CUSTOM_SYNTAX = "payload=<bytes>,rate=<bit/s>[,sync=<bytes>][,header=<bytes>][,crc=<bytes>][,ack=<seconds>]"
LINK_SYNTAX = (f"<radio>[,crc-off|crc-on][,arq=<retransmissions>][,loss=<packet loss probability>] "
               f"with <radio> one of {', '.join(RADIOS)} or a custom radio {CUSTOM_SYNTAX}")

_RADIO_KEYS = {"payload": "max_payload_bytes", "sync": "sync_bytes", "header": "header_bytes",
               "crc": "crc_bytes", "rate": "bit_rate", "ack": "ack_timeout_s"}
_LINK_KEYS = ("arq", "loss")
_CRC_FLAGS = {"crc-on": True, "crc-off": False}


def parse_link(spec: str) -> Link:
    """A link from its command-line form, e.g. ble, 802.15.4,crc-off, lora,arq=3, ble,loss=0.05,
    payload=64,sync=4,header=2,crc=2,rate=250000."""
    def fail(problem: str) -> NoReturn:
        raise RadioError(f"link '{spec}': {problem}; expected {LINK_SYNTAX}")

    def number(key: str, text: str, whole: bool) -> float:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            fail(f"{key}='{text.strip()}' is not a {'whole number' if whole else 'number'}")
        if not math.isfinite(value):
            fail(f"{key}={text.strip()} is not finite")
        return value

    first, *rest = [token.strip() for token in spec.split(",")]
    if not first:
        fail("no radio given")
    custom = "=" in first
    if not custom and first.lower() not in RADIOS:
        fail(f"unknown radio '{first}'")
    figures, options, crc = {}, {}, None
    for token in ([first] if custom else []) + rest:
        key, equals, text = (part.strip() for part in token.partition("="))
        key = key.lower()
        if not equals and key in _CRC_FLAGS:
            if crc is not None:
                fail("CRC mode given twice")
            crc = _CRC_FLAGS[key]
        elif equals and key in _RADIO_KEYS:
            if not custom:
                fail(f"'{key}=' describes a custom radio and cannot follow the preset '{first}'")
            if key in figures:
                fail(f"'{key}=' given twice")
            figures[key] = number(key, text, whole=key not in ("rate", "ack"))
        elif equals and key in _LINK_KEYS:
            if key in options:
                fail(f"'{key}=' given twice")
            options[key] = number(key, text, whole=key == "arq")
        else:
            fail(f"unknown option '{token}'")
    radio = _custom_radio(figures, fail) if custom else RADIOS[first.lower()]
    loss, arq = options.get("loss", 0.0), options.get("arq", 0)
    if not 0.0 <= loss <= 1.0:
        fail(f"packet loss {loss} is not within [0, 1]")
    if arq < 0:
        fail(f"retransmissions arq={arq} must not be negative")
    return Link(radio, crc=True if crc is None else crc, packet_loss=float(loss), max_retransmissions=arq)


def _custom_radio(figures: dict, fail) -> Radio:
    for key in ("payload", "rate"):
        if key not in figures:
            fail(f"a custom radio needs {key}=")
    if figures["payload"] < 1:
        fail(f"payload={figures['payload']} must be at least 1 byte")
    if figures["rate"] <= 0:
        fail(f"rate={figures['rate']} must be positive")
    for key in ("sync", "header", "crc", "ack"):
        if figures.get(key, 0) < 0:
            fail(f"{key}={figures[key]} must not be negative")
    values = {"sync": 0, "header": 0, "crc": 0, "ack": 0.0, **figures}
    return Radio("custom", **{_RADIO_KEYS[key]: value for key, value in values.items()})

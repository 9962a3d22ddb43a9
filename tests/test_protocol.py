"""The host side of the wire protocol, without hardware: COBS, frames, CRC, the frame reader."""
import random
import struct
import time
import zlib

import pytest

from semhil.protocol import (PROTOCOL_VERSION, ErrorCode, Frame, FrameError, FrameReader, MsgType, cobs_decode,
                             cobs_encode, decode_frame, encode_frame, parse_error, parse_infer_ok, parse_info)

# The encoding examples of the COBS article on Wikipedia, delimiter removed.
COBS_EXAMPLES = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize("data, encoded", COBS_EXAMPLES)
def test_cobs_matches_the_reference_examples(data, encoded):
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize("data", [b"", b"\x07" * 253, b"\x07" * 254, b"\x07" * 255, b"\x07" * 508, b"\x07" * 509,
                                  bytes(1), bytes(300), b"\x00" + b"\x07" * 254 + b"\x00"])
def test_cobs_round_trips_edge_cases(data):
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


def test_cobs_round_trips_random_data():
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(0, 2000)
        zero_share = rng.choice([0.0, 0.01, 0.3, 1.0])
        data = bytes(0 if rng.random() < zero_share else rng.randint(1, 255) for _ in range(n))
        encoded = cobs_encode(data)
        assert 0 not in encoded and cobs_decode(encoded) == data


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x03\x11", b"\x02\x00", b"\x05\x01\x02", b"\x03\x11\x00\x01"])
def test_cobs_decode_rejects_garbage(bad):
    with pytest.raises(FrameError):
        cobs_decode(bad)


def test_crc_is_zlib_crc32_little_endian_after_header_and_payload():
    assert zlib.crc32(b"123456789") == 0xCBF43926  # the IEEE CRC-32 check value
    payload = bytes(range(256)) * 3
    frame = cobs_decode(encode_frame(MsgType.INFER, 0xBEEF, payload)[:-1])
    body = struct.pack("<BBHH", PROTOCOL_VERSION, MsgType.INFER, 0xBEEF, len(payload)) + payload
    assert frame == body + struct.pack("<I", zlib.crc32(body))


def test_encode_frame_known_bytes():
    # INFO_REQ, seq 0x1234: 01 01 34 12 00 00, CRC 0x2715435E little-endian, then COBS and 0x00.
    assert zlib.crc32(b"\x01\x01\x34\x12\x00\x00") == 0x2715435E
    assert encode_frame(MsgType.INFO_REQ, 0x1234) == b"\x05\x01\x01\x34\x12\x01\x05\x5e\x43\x15\x27\x00"


def test_frame_round_trip():
    for payload in (b"", b"\x00" * 10, bytes(range(256)) * 4):
        wire = encode_frame(MsgType.INFER_OK, 65535, payload)
        assert wire.endswith(b"\x00") and 0 not in wire[:-1]
        assert decode_frame(wire[:-1]) == Frame(MsgType.INFER_OK, 65535, payload)


def test_encode_frame_refuses_what_does_not_fit():
    with pytest.raises(ValueError):
        encode_frame(MsgType.INFER, 65536)
    with pytest.raises(ValueError):
        encode_frame(MsgType.INFER, 1, bytes(65536))


def raw_frame(version=PROTOCOL_VERSION, msg_type=MsgType.INFO, seq=3, payload=b"ab", length=None, crc_xor=0):
    body = struct.pack("<BBHH", version, msg_type, seq, len(payload) if length is None else length) + payload
    return cobs_encode(body + struct.pack("<I", zlib.crc32(body) ^ crc_xor))


def test_decode_frame_accepts_a_hand_built_frame():
    assert decode_frame(raw_frame()) == Frame(MsgType.INFO, 3, b"ab")


@pytest.mark.parametrize("wire, code", [
    (raw_frame(crc_xor=1), ErrorCode.BAD_CRC),
    (raw_frame(crc_xor=0x80000000), ErrorCode.BAD_CRC),
    (raw_frame(length=3), ErrorCode.BAD_LENGTH),
    (raw_frame(length=1), ErrorCode.BAD_LENGTH),
    (cobs_encode(b"\x01\x81\x03\x00\x00\x00\x00\x00\x00"), ErrorCode.BAD_LENGTH),  # 9 bytes: no room for a CRC
    (cobs_encode(b""), ErrorCode.BAD_LENGTH),
    (raw_frame(version=2), ErrorCode.BAD_VERSION),
    (raw_frame(version=0), ErrorCode.BAD_VERSION),
    (b"\x09\x01\x01", ErrorCode.BAD_COBS),
])
def test_decode_frame_rejects_garbled_frames(wire, code):
    with pytest.raises(FrameError) as caught:
        decode_frame(wire)
    assert caught.value.code == code and str(caught.value)


def test_decode_frame_rejects_any_single_bit_flip():
    wire = encode_frame(MsgType.INFER_OK, 42, bytes(range(1, 60)))[:-1]
    for i in range(len(wire)):
        for bit in range(8):
            flipped = bytearray(wire)
            flipped[i] ^= 1 << bit
            with pytest.raises(FrameError):
                decode_frame(bytes(flipped))


class FakePort:
    """A pyserial-like port that hands out the given chunks, at most one per read; then times out."""

    def __init__(self, chunks, timeout=0.01):
        self.chunks = [bytes(c) for c in chunks]
        self.timeout = timeout
        self.reads = 0

    @property
    def in_waiting(self):
        return len(self.chunks[0]) if self.chunks else 0

    def read(self, n):
        self.reads += 1
        if not self.chunks:
            time.sleep(self.timeout)
            return b""
        data, rest = self.chunks[0][:n], self.chunks[0][n:]
        if rest:
            self.chunks[0] = rest
        else:
            self.chunks.pop(0)
        return data


def test_reader_joins_frames_split_across_reads_and_keeps_the_rest():
    first = encode_frame(MsgType.INFO, 1, b"proto=1\n")
    second = encode_frame(MsgType.INFER_OK, 2, bytes(8) + bytes(range(147)))
    stream = b"\x00\x00" + first + second
    chunks = [stream[i:i + 7] for i in range(0, len(stream), 7)]
    port = FakePort(chunks)
    reader = FrameReader(port)
    assert reader.read_frame(1.0) == Frame(MsgType.INFO, 1, b"proto=1\n")
    assert reader.read_frame(1.0) == Frame(MsgType.INFER_OK, 2, bytes(8) + bytes(range(147)))
    assert port.reads > 2
    assert reader.read_frame(0.05) is None


def test_reader_one_byte_at_a_time():
    wire = encode_frame(MsgType.INFER, 9, bytes(784))
    reader = FrameReader(FakePort([bytes([b]) for b in wire]))
    assert reader.read_frame(2.0) == Frame(MsgType.INFER, 9, bytes(784))


def test_reader_returns_none_on_timeout_and_keeps_a_partial_frame():
    wire = encode_frame(MsgType.INFO, 5, b"board=x\n")
    port = FakePort([wire[:6]])
    reader = FrameReader(port)
    start = time.monotonic()
    assert reader.read_frame(0.1) is None
    assert 0.1 <= time.monotonic() - start < 1.0
    port.chunks.append(wire[6:])
    assert reader.read_frame(1.0) == Frame(MsgType.INFO, 5, b"board=x\n")


def test_reader_raises_on_a_garbled_frame_then_reads_the_next():
    bad = bytearray(encode_frame(MsgType.INFO, 1, b"abc"))
    bad[3] ^= 0x40
    good = encode_frame(MsgType.INFO, 2, b"def")
    reader = FrameReader(FakePort([bytes(bad) + good]))
    with pytest.raises(FrameError):
        reader.read_frame(1.0)
    assert reader.read_frame(1.0) == Frame(MsgType.INFO, 2, b"def")


def test_parse_info():
    info = parse_info(b"proto=1\nboard=qemu-stm32f405\ninput_shape=28,28,1\nempty=\n")
    assert info == {"proto": "1", "board": "qemu-stm32f405", "input_shape": "28,28,1", "empty": ""}
    with pytest.raises(FrameError):
        parse_info(b"proto=1\nnonsense\n")


def test_parse_infer_ok():
    result = parse_infer_ok(struct.pack("<II", 123456, 652) + b"\x01\x02\x03")
    assert (result.ticks, result.stack_peak_bytes, result.code) == (123456, 652, b"\x01\x02\x03")
    with pytest.raises(FrameError):
        parse_infer_ok(bytes(7))


def test_parse_error():
    assert parse_error(bytes([ErrorCode.BAD_CRC]) + b"CRC mismatch") == (ErrorCode.BAD_CRC, "CRC mismatch")
    with pytest.raises(FrameError):
        parse_error(b"")


def test_message_type_and_error_code_values_match_the_firmware():
    """The enums of host/semhil/protocol.py and device/core/ee_protocol.h name the same numbers."""
    import re
    from semhil.paths import DEVICE_DIR
    header = (DEVICE_DIR / "core" / "ee_protocol.h").read_text()
    device = {name: int(value, 0) for name, value in re.findall(r"EE_(\w+) = (0x[0-9A-Fa-f]+|\d+),", header)}
    host = {**{t.name: int(t) for t in MsgType}, **{c.name: int(c) for c in ErrorCode}}
    assert device == host

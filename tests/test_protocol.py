"""The host side of the wire protocol, without hardware: COBS, frames, CRC, the frame reader."""
import random
import struct
import time
import zlib

import pytest

from semhil.protocol import (PROTOCOL_VERSION, ErrorCode, Frame, FrameError, FrameReader, InferResult, MsgType, cobs_decode,
                             cobs_encode, decode_frame, encode_frame, encode_image_chunk, parse_chunk_ok, parse_error,
                             parse_image_chunk, parse_infer_ok, parse_info, split_rows)

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
    frame = cobs_decode(encode_frame(MsgType.IMAGE_CHUNK, 0xBEEF, payload)[:-1])
    body = struct.pack("<BBHH", PROTOCOL_VERSION, MsgType.IMAGE_CHUNK, 0xBEEF, len(payload)) + payload
    assert frame == body + struct.pack("<I", zlib.crc32(body))


def test_encode_frame_known_bytes():
    # version 2, INFO_REQ, seq 0x1234: 02 01 34 12 00 00, CRC little-endian, then COBS and 0x00.
    assert PROTOCOL_VERSION == 2
    assert zlib.crc32(b"\x02\x01\x34\x12\x00\x00") == 0xA18131F0
    assert encode_frame(MsgType.INFO_REQ, 0x1234) == b"\x05\x02\x01\x34\x12\x01\x05\xf0\x31\x81\xa1\x00"


def test_image_chunk_known_bytes():
    # IMAGE_CHUNK of image 0x0102, rows from 3: 02 01 | 03 00 | pixels
    assert MsgType.IMAGE_CHUNK == 0x02 and MsgType.CHUNK_OK == 0x84 and MsgType.INFER_OK == 0x82
    assert encode_image_chunk(0x0102, 3, b"\x07\x08") == b"\x02\x01\x03\x00\x07\x08"
    assert parse_image_chunk(b"\x02\x01\x03\x00\x07\x08") == (0x0102, 3, b"\x07\x08")
    assert parse_image_chunk(encode_image_chunk(65535, 65535, bytes(1000))) == (65535, 65535, bytes(1000))
    with pytest.raises(ValueError):
        encode_image_chunk(65536, 0, b"")
    with pytest.raises(ValueError):
        encode_image_chunk(0, -1, b"")
    with pytest.raises(FrameError):
        parse_image_chunk(b"\x01\x02\x03")


def test_parse_chunk_ok():
    assert parse_chunk_ok(b"\x02\x01\x12\x00") == (0x0102, 18)
    for bad in (b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"):
        with pytest.raises(FrameError, match="CHUNK_OK payload"):
            parse_chunk_ok(bad)


@pytest.mark.parametrize("rows, row_bytes, chunk_rows", [(28, 28, 18), (28, 28, 28), (28, 28, 1), (32, 96, 5), (7, 3, 7), (1, 5, 4)])
def test_split_rows_covers_the_image_in_order_in_whole_rows(rows, row_bytes, chunk_rows):
    image = bytes(random.Random(rows).randrange(256) for _ in range(rows * row_bytes))
    chunks = split_rows(image, row_bytes, chunk_rows)
    assert b"".join(pixels for _, pixels in chunks) == image
    assert [first for first, _ in chunks] == list(range(0, rows, chunk_rows))
    assert all(len(pixels) == row_bytes * chunk_rows for _, pixels in chunks[:-1])
    assert 0 < len(chunks[-1][1]) <= row_bytes * chunk_rows and len(chunks[-1][1]) % row_bytes == 0


def test_frame_round_trip():
    for payload in (b"", b"\x00" * 10, bytes(range(256)) * 4):
        wire = encode_frame(MsgType.INFER_OK, 65535, payload)
        assert wire.endswith(b"\x00") and 0 not in wire[:-1]
        assert decode_frame(wire[:-1]) == Frame(MsgType.INFER_OK, 65535, payload)


def test_encode_frame_refuses_what_does_not_fit():
    with pytest.raises(ValueError):
        encode_frame(MsgType.IMAGE_CHUNK, 65536)
    with pytest.raises(ValueError):
        encode_frame(MsgType.IMAGE_CHUNK, 1, bytes(65536))


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
    (cobs_encode(b"\x02\x81\x03\x00\x00\x00\x00\x00\x00"), ErrorCode.BAD_LENGTH),  # 9 bytes: no room for a CRC
    (cobs_encode(b""), ErrorCode.BAD_LENGTH),
    (raw_frame(version=1), ErrorCode.BAD_VERSION),
    (raw_frame(version=3), ErrorCode.BAD_VERSION),
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
    first = encode_frame(MsgType.INFO, 1, b"proto=2\n")
    second = encode_frame(MsgType.INFER_OK, 2, bytes(12) + bytes(range(147)))
    stream = b"\x00\x00" + first + second
    chunks = [stream[i:i + 7] for i in range(0, len(stream), 7)]
    port = FakePort(chunks)
    reader = FrameReader(port)
    assert reader.read_frame(1.0) == Frame(MsgType.INFO, 1, b"proto=2\n")
    assert reader.read_frame(1.0) == Frame(MsgType.INFER_OK, 2, bytes(12) + bytes(range(147)))
    assert port.reads > 2
    assert reader.read_frame(0.05) is None


def test_reader_one_byte_at_a_time():
    wire = encode_frame(MsgType.IMAGE_CHUNK, 9, bytes(508))
    reader = FrameReader(FakePort([bytes([b]) for b in wire]))
    assert reader.read_frame(2.0) == Frame(MsgType.IMAGE_CHUNK, 9, bytes(508))


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
    result = parse_infer_ok(struct.pack("<III", 123456, 7890, 652) + b"\x01\x02\x03")
    assert result == InferResult(ticks=123456, ticks_after_last_byte=7890, stack_peak_bytes=652, code=b"\x01\x02\x03")
    assert [f for f in InferResult.__dataclass_fields__] == ["ticks", "ticks_after_last_byte", "stack_peak_bytes", "code"]
    assert parse_infer_ok(bytes(12)) == InferResult(0, 0, 0, b"")
    with pytest.raises(FrameError):
        parse_infer_ok(bytes(11))


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


COBS_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "ee_protocol.h"

static void out(const uint8_t *p, uint32_t n)
{
    fwrite(p, 1, n, stdout);
}

int main(int argc, char **argv)
{
    static uint8_t in[1 << 16], prefix[64];
    uint32_t n = (uint32_t)fread(in, 1, sizeof in, stdin);
    if (argc > 1) /* the first argv[1] bytes of what stdin encodes, cut off after n bytes */
        fwrite(prefix, 1, ee_cobs_decode_prefix(in, n, prefix, (uint32_t)atoi(argv[1])), stdout);
    else
        ee_cobs_send(in, n, out);
    return 0;
}
"""


@pytest.fixture(scope="module")
def firmware_cobs(tmp_path_factory):
    """The firmware's own COBS (device/core/ee_protocol.c) compiled for this computer: data in on stdin, out on stdout."""
    import subprocess
    from semhil.paths import DEVICE_DIR
    out = tmp_path_factory.mktemp("cobs")
    (out / "driver.c").write_text(COBS_DRIVER)
    core = DEVICE_DIR / "core"
    subprocess.run(["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{core}", str(out / "driver.c"),
                    str(core / "ee_protocol.c"), "-o", str(out / "cobs")], check=True)

    def run(data: bytes, *args: str) -> bytes:
        return subprocess.run([str(out / "cobs"), *args], input=data, capture_output=True, check=True).stdout
    return run


def test_firmware_sends_the_cobs_python_decodes(firmware_cobs):
    """ee_cobs_send, which encodes as it sends (no buffer of its own), gives the reference encoding."""
    rng = random.Random(2)
    cases = [data for data, _ in COBS_EXAMPLES] + [b"", bytes(1), b"\x07" * 254, b"\x07" * 254 + b"\x00", b"\x07" * 508,
                                                   b"\x07" * 509, b"\x00" + b"\x07" * 254 + b"\x00"]
    for _ in range(60):
        zero_share = rng.choice([0.0, 0.004, 0.3, 1.0])
        cases.append(bytes(0 if rng.random() < zero_share else rng.randint(1, 255) for _ in range(rng.randint(1, 1500))))
    for data in cases:
        assert firmware_cobs(data) == cobs_encode(data), data[:20]


def test_firmware_reads_the_header_of_a_frame_cut_off(firmware_cobs):
    """What the firmware reads of a frame too long for its buffer: the header from the first bytes."""
    for seq, length in ((0, 0), (1, 256), (0x1200, 0x0034), (0xFFFF, 0xFFFF)):
        header = struct.pack("<BBHH", PROTOCOL_VERSION, MsgType.IMAGE_CHUNK, seq, length)
        wire = cobs_encode(header + bytes(range(1, 256)) * 3 + bytes(20))
        for cut in (7, 10, 100, len(wire)):
            assert firmware_cobs(wire[:cut], "6") == header
    assert firmware_cobs(b"\x04\x11\x22", "6") == b"\x11\x22"  # cut off before 6 bytes: what there is

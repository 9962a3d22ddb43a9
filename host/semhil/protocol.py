"""The framed UART protocol between the host and the firmware (device/core/ee_serve.c).

A frame is `version u8 | type u8 | seq u16 LE | len u16 LE | payload[len] | crc32 u32 LE`, the
CRC-32 (zlib) covering every byte before it. On the wire: COBS(frame), then one 0x00 delimiter.

An image goes to the board in chunks of whole rows (IMAGE_CHUNK: `image u16 | first_row u16 |
pixels`), one chunk in flight: the board answers CHUNK_OK (`image u16 | next_row u16`) once it has
consumed the chunk's rows, and INFER_OK (`ticks_total u32 | ticks_after_last_byte u32 | stack_peak
u32 | code`) to the chunk holding the image's last row. INFO tells the image's rows, the bytes of a
row and the most rows one chunk may carry.
"""
from __future__ import annotations

import enum
import struct
import time
import zlib
from dataclasses import dataclass

from cobs import cobs

PROTOCOL_VERSION = 2
HEADER = struct.Struct("<BBHH")
CHUNK_HEADER = struct.Struct("<HH")      # IMAGE_CHUNK: image, first_row; then the rows' pixels
CHUNK_OK = struct.Struct("<HH")          # CHUNK_OK: image, next_row
INFER_OK_HEADER = struct.Struct("<III")  # INFER_OK: ticks_total, ticks_after_last_byte, stack_peak; then the code
CRC_BYTES = 4
MAX_WIRE_BYTES = 1 << 16  # a reader drops any longer run of bytes without a delimiter


class MsgType(enum.IntEnum):
    INFO_REQ = 0x01
    IMAGE_CHUNK = 0x02
    LAYERS_REQ = 0x03
    RELEASE = 0x04      # a MicroPython board's program returns to the REPL (after RELEASED); a firmware answers RELEASED and goes on
    INFO = 0x81
    INFER_OK = 0x82
    LAYERS = 0x83
    CHUNK_OK = 0x84
    RELEASED = 0x85
    ERROR = 0x7F


class ErrorCode(enum.IntEnum):
    BAD_CRC = 1
    BAD_LENGTH = 2
    UNKNOWN_TYPE = 3
    OVERSIZED = 4
    BAD_VERSION = 5
    BAD_INPUT_SIZE = 6
    BAD_COBS = 7
    MODEL_NOT_READY = 8
    IMAGE_OUT_OF_ORDER = 9   # first_row is not the next row of the image in progress
    IMAGE_NOT_BEGUN = 10     # first_row > 0 and no image in progress with that id
    IMAGE_CUT_SHORT = 11     # first_row 0 while another image was unfinished: that one is dropped, send again
    CHUNK_TOO_LARGE = 12     # more rows than chunk_rows, or rows past the image's end


class FrameError(Exception):
    """A received frame or payload that is garbled; the message says what, `code` which kind."""

    def __init__(self, message: str, code: ErrorCode | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class InferResult:
    ticks: int                  # device compute for the whole image
    ticks_after_last_byte: int  # of which after the image's last chunk arrived
    stack_peak_bytes: int
    code: bytes


def cobs_encode(data: bytes) -> bytes:
    """COBS without the trailing 0x00 (a full block of 254 bytes at the end gets no empty block after it)."""
    return cobs.encode(data)


def cobs_decode(data: bytes) -> bytes:
    if not data:
        raise FrameError("bad COBS: empty", ErrorCode.BAD_COBS)
    try:
        return cobs.decode(data)
    except cobs.DecodeError as e:
        raise FrameError(f"bad COBS: {e}", ErrorCode.BAD_COBS) from None


def encode_frame(type: int, seq: int, payload: bytes = b"") -> bytes:
    """The wire bytes of one frame, trailing 0x00 included."""
    if not 0 <= seq <= 0xFFFF or len(payload) > 0xFFFF:
        raise ValueError(f"seq {seq} or payload length {len(payload)} does not fit 16 bits")
    body = HEADER.pack(PROTOCOL_VERSION, type, seq, len(payload)) + bytes(payload)
    return cobs_encode(body + zlib.crc32(body).to_bytes(CRC_BYTES, "little")) + b"\x00"


def decode_frame(wire: bytes) -> Frame:
    """One frame from the bytes between two delimiters. Checks in the firmware's order."""
    data = cobs_decode(wire)
    if len(data) < HEADER.size + CRC_BYTES:
        raise FrameError(f"frame of {len(data)} bytes is shorter than header and CRC", ErrorCode.BAD_LENGTH)
    body, crc = data[:-CRC_BYTES], int.from_bytes(data[-CRC_BYTES:], "little")
    if zlib.crc32(body) != crc:
        raise FrameError(f"bad CRC: frame says {crc:#010x}, bytes give {zlib.crc32(body):#010x}", ErrorCode.BAD_CRC)
    version, msg_type, seq, length = HEADER.unpack_from(body)
    if version != PROTOCOL_VERSION:
        raise FrameError(f"protocol version {version}, expected {PROTOCOL_VERSION}", ErrorCode.BAD_VERSION)
    if length != len(body) - HEADER.size:
        raise FrameError(f"length field {length} but {len(body) - HEADER.size} payload bytes", ErrorCode.BAD_LENGTH)
    return Frame(msg_type, seq, bytes(body[HEADER.size:]))


class FrameReader:
    """Reads frames from a pyserial-like port (`.read(n)` waiting at most the port's `.timeout`,
    `.in_waiting`). The port's timeout should be short: it is how often read_frame looks at the clock."""

    def __init__(self, port):
        self.port = port
        self.buffer = bytearray()
        self.discarding = False  # inside a run longer than MAX_WIRE_BYTES

    def read_frame(self, timeout: float) -> Frame | None:
        """The next frame, None if none is complete within timeout seconds; raises FrameError on a
        garbled one. Bytes after the frame are kept for the next call."""
        deadline = time.monotonic() + timeout
        while True:
            end = self.buffer.find(0)
            if end >= 0:
                wire = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                if self.discarding:
                    self.discarding = False
                    raise FrameError(f"frame longer than {MAX_WIRE_BYTES} bytes", ErrorCode.OVERSIZED)
                if wire:
                    return decode_frame(wire)
                continue
            if len(self.buffer) > MAX_WIRE_BYTES:
                self.buffer.clear()
                self.discarding = True
            if time.monotonic() >= deadline:
                return None
            self.buffer += self.port.read(max(1, self.port.in_waiting))


def parse_info(payload: bytes) -> dict[str, str]:
    info = {}
    for line in payload.decode("ascii", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise FrameError(f"INFO line {line!r} is not key=value")
        info[key] = value
    return info


def encode_image_chunk(image: int, first_row: int, pixels: bytes) -> bytes:
    """The payload of an IMAGE_CHUNK: rows first_row.. of image `image` (their pixels, whole rows)."""
    if not 0 <= image <= 0xFFFF or not 0 <= first_row <= 0xFFFF:
        raise ValueError(f"image {image} or first_row {first_row} does not fit 16 bits")
    return CHUNK_HEADER.pack(image, first_row) + bytes(pixels)


def parse_image_chunk(payload: bytes) -> tuple[int, int, bytes]:
    """(image, first_row, pixels) of an IMAGE_CHUNK payload."""
    if len(payload) < CHUNK_HEADER.size:
        raise FrameError(f"IMAGE_CHUNK payload of {len(payload)} bytes is shorter than image and first_row")
    image, first_row = CHUNK_HEADER.unpack_from(payload)
    return image, first_row, bytes(payload[CHUNK_HEADER.size:])


def parse_chunk_ok(payload: bytes) -> tuple[int, int]:
    """(image, next_row) of a CHUNK_OK."""
    if len(payload) != CHUNK_OK.size:
        raise FrameError(f"CHUNK_OK payload of {len(payload)} bytes, expected {CHUNK_OK.size} (image, next_row)")
    return CHUNK_OK.unpack(payload)


def parse_infer_ok(payload: bytes) -> InferResult:
    if len(payload) < INFER_OK_HEADER.size:
        raise FrameError(f"INFER_OK payload of {len(payload)} bytes is shorter than its {INFER_OK_HEADER.size}-byte "
                         "header (ticks, ticks after the last byte, stack peak)")
    ticks, ticks_after, stack_peak = INFER_OK_HEADER.unpack_from(payload)
    return InferResult(ticks, ticks_after, stack_peak, bytes(payload[INFER_OK_HEADER.size:]))


def split_rows(image: bytes, row_bytes: int, chunk_rows: int) -> list[tuple[int, bytes]]:
    """(first_row, pixels) of each chunk of an image: chunk_rows rows each, the last one the rest."""
    step = row_bytes * chunk_rows
    return [(at // row_bytes, bytes(image[at:at + step])) for at in range(0, len(image), step)]


def parse_error(payload: bytes) -> tuple[int, str]:
    if not payload:
        raise FrameError("ERROR payload is empty")
    return payload[0], payload[1:].decode("ascii", errors="replace")

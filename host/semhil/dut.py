"""The device under test as the host sees it: INFO, images sent in chunks of rows and their codes,
over the framed UART protocol, with retries for lost or garbled frames and a reset for a board that
stops answering."""
from __future__ import annotations

import os
import time
from typing import Callable

import serial

from .errors import SemhilError
from .protocol import (ErrorCode, Frame, FrameError, FrameReader, InferResult, MsgType, encode_frame, encode_image_chunk,
                       parse_chunk_ok, parse_error, parse_info, parse_infer_ok, split_rows)


try:  # tcdrain on a pseudo-terminal whose other end has gone raises termios.error, not an OSError
    from termios import error as _TermiosError
except ImportError:  # not a POSIX system
    class _TermiosError(Exception):
        pass

PORT_ERRORS = (serial.SerialException, OSError, _TermiosError)

# Sent before each request: ends whatever partial frame the board holds (it answers that with an
# ERROR, or ignores a lone delimiter), so the request itself always arrives whole.
RESYNC = b"\x00"


# The board's answers to a chunk that does not continue the image it holds: the host sends the
# image again from row 0 (at most MAX_RESTARTS times per image).
RESTART_CODES = (ErrorCode.IMAGE_OUT_OF_ORDER, ErrorCode.IMAGE_NOT_BEGUN, ErrorCode.IMAGE_CUT_SHORT)
MAX_RESTARTS = 3


class DeviceError(SemhilError):
    """The board answered ERROR to a well-formed request (`code`: its ErrorCode), or something else
    than the request calls for (`code` None)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class BoardNotAnswering(SemhilError):
    """No valid reply after every retry (and a reset, where the board can be reset)."""


class Dut:
    def __init__(self, url: str, name: str, baud: int = 115200, timeout_s: float = 10.0, retries: int = 2,
                 reset: Callable[[], str] | None = None):
        self.url, self.name, self.baud = url, name, baud
        self.timeout_s, self.retries, self.reset = timeout_s, retries, reset
        self.seq = 0
        # images are numbered from a random start, so that a new connection's first image is never
        # taken for the repeat of the last image another connection sent
        self.image_id = int.from_bytes(os.urandom(2), "little")
        self.max_chunk_rows: int | None = None  # send at most this many rows a chunk (None: as many as the board takes)
        self.board_info: dict[str, str] | None = None  # the board's last INFO
        self.serial = None
        self.reader = None
        self.log: list[str] = []  # retries and resets, for the report

    def open(self) -> "Dut":
        try:
            self.serial = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.05)
        except (serial.SerialException, ValueError) as e:
            raise SemhilError(f"cannot open serial port {self.url} of board {self.name}: {e}; "
                              "check that the board is running or plugged in and the port name is right") from None
        self.reader = FrameReader(self.serial)
        return self

    def close(self) -> None:
        if self.serial is not None:
            self.serial.close()
            self.serial = None

    def __enter__(self) -> "Dut":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _port_failed(self, error: Exception) -> BoardNotAnswering:
        return BoardNotAnswering(f"serial port {self.url} of board {self.name} failed ({error}): the board was unplugged, "
                                 "powered off or its process ended")

    def write_raw(self, data: bytes) -> None:
        try:
            self.serial.write(data)
            self.serial.flush()
        except PORT_ERRORS as e:
            raise self._port_failed(e) from None

    def read_frame(self, timeout_s: float) -> Frame | None:
        try:
            return self.reader.read_frame(timeout_s)
        except PORT_ERRORS as e:
            raise self._port_failed(e) from None

    def _try_once(self, msg_type: int, payload: bytes, what: str) -> Frame | None:
        self.seq = (self.seq + 1) & 0xFFFF
        self.write_raw(RESYNC + encode_frame(msg_type, self.seq, payload))
        while True:
            try:
                frame = self.read_frame(self.timeout_s)
            except FrameError as e:
                self.log.append(f"{what}: garbled reply ({e})")
                return None
            if frame is None:
                self.log.append(f"{what}: no reply")
                return None
            if frame.seq != self.seq:
                continue  # a late reply to an earlier try
            if frame.type == MsgType.ERROR:
                code, text = parse_error(frame.payload)
                if code in (ErrorCode.BAD_CRC, ErrorCode.BAD_COBS, ErrorCode.BAD_LENGTH):
                    self.log.append(f"{what}: request garbled on the wire ({text})")
                    return None
                try:
                    name = ErrorCode(code).name
                except ValueError:
                    name = f"error {code}"
                raise DeviceError(f"board {self.name} refused {what}: {name}: {text}", code)
            return frame

    def request(self, msg_type: int, payload: bytes, what: str) -> Frame:
        for attempt in range(2 if self.reset else 1):
            for _ in range(1 + self.retries):
                frame = self._try_once(msg_type, payload, what)
                if frame is not None:
                    return frame
            if self.reset and attempt == 0:
                self.log.append(f"reset after {what} got no answer")
                self.close()
                self.url = self.reset()
                self.open()
                self.wait_ready()
        tries = (1 + self.retries) * (2 if self.reset else 1)
        raise BoardNotAnswering(f"board {self.name} did not answer {what} after {tries} tries"
                                + (" and a reset" if self.reset else "") + f" ({self.timeout_s:g} s each)")

    def wait_ready(self, timeout_s: float = 20.0, poll_s: float = 0.25) -> dict[str, str]:
        """INFO, asked again every poll_s until the board answers: a board just started (QEMU
        connects its pty with a delay) may drop the first bytes. Returns the INFO fields."""
        deadline = time.monotonic() + timeout_s
        garbled = None
        while time.monotonic() < deadline:
            self.seq = (self.seq + 1) & 0xFFFF
            self.write_raw(RESYNC + encode_frame(MsgType.INFO_REQ, self.seq, b""))
            try:
                frame = self.read_frame(poll_s)
                while frame is not None and frame.seq != self.seq:
                    frame = self.read_frame(poll_s)
            except FrameError as e:
                garbled = e
                continue
            if frame is not None and frame.type == MsgType.INFO:
                return self._remember(parse_info(frame.payload))
        hint = ""
        if garbled is not None and garbled.code == ErrorCode.BAD_VERSION:
            hint = f" (its replies: {garbled}; rebuild and flash the firmware with this semhil)"
        elif garbled is not None:
            hint = f" (the last reply was garbled: {garbled})"
        raise BoardNotAnswering(f"board {self.name} did not answer INFO within {timeout_s:g} s of starting on {self.url}{hint}")

    def info(self) -> dict[str, str]:
        return self._remember(parse_info(self.request(MsgType.INFO_REQ, b"", "INFO").payload))

    def _remember(self, info: dict[str, str]) -> dict[str, str]:
        self.board_info = info
        return info

    def layer_ticks(self) -> dict[str, int]:
        """Timer ticks of each layer of the board's last inference, in graph order."""
        frame = self.request(MsgType.LAYERS_REQ, b"", "LAYERS")
        if frame.type != MsgType.LAYERS:
            raise DeviceError(f"board {self.name} answered LAYERS with frame type {frame.type:#x}")
        return {name: int(value) for name, value in parse_info(frame.payload).items()}

    def _image_geometry(self) -> tuple[int, int, int, int]:
        """(input_rows, row_bytes, chunk_rows, code_bytes) from the board's INFO."""
        if self.board_info is None:
            raise SemhilError(f"board {self.name}: call wait_ready() or info() before infer(): "
                              "the board's INFO says how many rows an image has and how many one chunk may carry")
        keys = ("input_rows", "row_bytes", "chunk_rows", "code_bytes")
        try:
            return tuple(int(self.board_info[k]) for k in keys)
        except (KeyError, ValueError):
            raise SemhilError(f"board {self.name} (protocol {self.board_info.get('proto', '?')}) gives no valid "
                              f"{', '.join(keys)} in its INFO: rebuild and flash its firmware with this semhil") from None

    def infer(self, image: bytes, what: str = "an image") -> InferResult:
        """Sends the image in chunks of chunk_rows rows, one at a time, and returns its code. A chunk or
        answer lost or garbled is sent again; a board that lost track of the image gets it again from row 0."""
        input_rows, row_bytes, chunk_rows, code_bytes = self._image_geometry()
        if len(image) != input_rows * row_bytes:
            raise SemhilError(f"{what} has {len(image)} bytes; board {self.name} takes images of {input_rows} rows of "
                              f"{row_bytes} bytes = {input_rows * row_bytes} bytes (input_shape {self.board_info.get('input_shape')})")
        image_id, self.image_id = self.image_id, (self.image_id + 1) & 0xFFFF
        chunks = split_rows(image, row_bytes, min(chunk_rows, self.max_chunk_rows or chunk_rows))
        restarts, i = 0, 0
        while True:
            first_row, pixels = chunks[i]
            next_row = first_row + len(pixels) // row_bytes
            part = f"{what} (rows {first_row}..{next_row - 1} of {input_rows})"
            try:
                frame = self.request(MsgType.IMAGE_CHUNK, encode_image_chunk(image_id, first_row, pixels), part)
            except DeviceError as e:
                if e.code not in RESTART_CODES:
                    raise
                if restarts == MAX_RESTARTS:
                    raise DeviceError(f"{e} (after sending {what} again from row 0 {restarts} times)", e.code) from None
                restarts += 1
                self.log.append(f"{part}: {e}; sending {what} again from row 0")
                i = 0
                continue
            expected = MsgType.CHUNK_OK if next_row < input_rows else MsgType.INFER_OK
            if frame.type != expected:
                raise DeviceError(f"board {self.name} answered {part} with frame type {frame.type:#x}, not {expected.name}")
            try:
                if expected == MsgType.CHUNK_OK:
                    answered = parse_chunk_ok(frame.payload)
                    if answered != (image_id, next_row):
                        raise FrameError(f"it is for image {answered[0]}, next row {answered[1]}, "
                                         f"not image {image_id}, next row {next_row}")
                    i += 1
                    continue
                result = parse_infer_ok(frame.payload)
                if len(result.code) != code_bytes:
                    raise FrameError(f"its code has {len(result.code)} bytes, not code_bytes={code_bytes}")
                return result
            except FrameError as e:
                raise DeviceError(f"board {self.name} answered {part} with a wrong {expected.name}: {e}") from None

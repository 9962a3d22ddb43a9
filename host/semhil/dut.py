"""The device under test as the host sees it: INFO and INFER over the framed UART protocol,
with retries for lost or garbled frames and a reset for a board that stops answering."""
from __future__ import annotations

import time
from typing import Callable

import serial

from .errors import SemhilError
from .protocol import (ErrorCode, Frame, FrameError, FrameReader, InferResult, MsgType, encode_frame, parse_error,
                       parse_info, parse_infer_ok)


# Sent before each request: ends whatever partial frame the board holds (it answers that with an
# ERROR, or ignores a lone delimiter), so the request itself always arrives whole.
RESYNC = b"\x00"


class DeviceError(SemhilError):
    """The board answered ERROR to a well-formed request."""


class BoardNotAnswering(SemhilError):
    """No valid reply after every retry (and a reset, where the board can be reset)."""


class Dut:
    def __init__(self, url: str, name: str, baud: int = 115200, timeout_s: float = 10.0, retries: int = 2,
                 reset: Callable[[], str] | None = None):
        self.url, self.name, self.baud = url, name, baud
        self.timeout_s, self.retries, self.reset = timeout_s, retries, reset
        self.seq = 0
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
        except (serial.SerialException, OSError) as e:
            raise self._port_failed(e) from None

    def read_frame(self, timeout_s: float) -> Frame | None:
        try:
            return self.reader.read_frame(timeout_s)
        except (serial.SerialException, OSError) as e:
            raise self._port_failed(e) from None

    def _try_once(self, msg_type: int, payload: bytes) -> Frame | None:
        self.seq = (self.seq + 1) & 0xFFFF
        self.write_raw(RESYNC + encode_frame(msg_type, self.seq, payload))
        while True:
            try:
                frame = self.read_frame(self.timeout_s)
            except FrameError as e:
                self.log.append(f"garbled reply ({e})")
                return None
            if frame is None:
                self.log.append("no reply")
                return None
            if frame.seq != self.seq:
                continue  # a late reply to an earlier try
            if frame.type == MsgType.ERROR:
                code, text = parse_error(frame.payload)
                if code in (ErrorCode.BAD_CRC, ErrorCode.BAD_COBS, ErrorCode.BAD_LENGTH):
                    self.log.append(f"request garbled on the wire ({text})")
                    return None
                raise DeviceError(f"board {self.name} refused the request: {ErrorCode(code).name}: {text}")
            return frame

    def request(self, msg_type: int, payload: bytes, what: str) -> Frame:
        for attempt in range(2 if self.reset else 1):
            for _ in range(1 + self.retries):
                frame = self._try_once(msg_type, payload)
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
        while time.monotonic() < deadline:
            self.seq = (self.seq + 1) & 0xFFFF
            self.write_raw(RESYNC + encode_frame(MsgType.INFO_REQ, self.seq, b""))
            try:
                frame = self.read_frame(poll_s)
            except FrameError:
                continue
            while frame is not None and frame.seq != self.seq:
                frame = self.read_frame(poll_s)
            if frame is not None and frame.type == MsgType.INFO:
                return parse_info(frame.payload)
        raise BoardNotAnswering(f"board {self.name} did not answer INFO within {timeout_s:g} s of starting on {self.url}")

    def info(self) -> dict[str, str]:
        return parse_info(self.request(MsgType.INFO_REQ, b"", "INFO").payload)

    def layer_ticks(self) -> dict[str, int]:
        """Timer ticks of each layer of the board's last inference, in graph order."""
        frame = self.request(MsgType.LAYERS_REQ, b"", "LAYERS")
        if frame.type != MsgType.LAYERS:
            raise DeviceError(f"board {self.name} answered LAYERS with frame type {frame.type:#x}")
        return {name: int(value) for name, value in parse_info(frame.payload).items()}

    def infer(self, image: bytes, what: str = "INFER") -> InferResult:
        frame = self.request(MsgType.INFER, image, what)
        if frame.type != MsgType.INFER_OK:
            raise DeviceError(f"board {self.name} answered {what} with frame type {frame.type:#x}")
        return parse_infer_ok(frame.payload)

"""Start a board and find its serial port: a native firmware process, or QEMU with the UART on a pty.

Both print `char device redirected to /dev/pts/N` once the port exists; the host opens that path
with pyserial exactly like a USB serial port.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from .boards import Board
from .errors import SemhilError

PTY_LINE = re.compile(r"char device redirected to (\S+)")
START_TIMEOUT_S = 15.0


def board_command(board: Board, firmware: Path) -> list[str]:
    if board.run_kind == "native":
        return [str(firmware)]
    if board.run_kind == "qemu" or board.micropython_port == "qemu":
        if shutil.which("qemu-system-arm") is None:
            raise SemhilError("qemu-system-arm not found (needed for board "
                              f"{board.name}): install it with `make toolchain` (as root) or `apt-get install qemu-system-arm`")
        # MicroPython's QEMU port writes nothing without semihosting
        semihosting = ["-semihosting"] if board.run_kind == "micropython" else []
        return ["qemu-system-arm", "-M", board.qemu_machine, "-display", "none", "-monitor", "none", *semihosting,
                "-serial", "pty", "-icount", "shift=0", "-kernel", str(firmware)]
    raise SemhilError(f"board {board.name}: run.kind {board.run_kind!r} cannot be started here")


class BoardProcess:
    """A running emulated or native board. `port` is the path of its UART."""

    def __init__(self, board: Board, firmware: Path):
        self.board = board
        self.command = board_command(board, firmware)
        self.process: subprocess.Popen | None = None
        self.port: str | None = None
        self.output: list[str] = []

    def start(self) -> str:
        self.output = []
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        found = threading.Event()
        threading.Thread(target=self._drain, args=(self.process, found), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not found.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                said = " ".join(self.output)[-500:] or "nothing"
                raise SemhilError(f"board {self.board.name} did not start ({' '.join(self.command)}); it said: {said}")
        return self.port

    def _drain(self, process: subprocess.Popen, found: threading.Event) -> None:
        for line in process.stdout:
            self.output.append(line.strip())
            match = PTY_LINE.search(line)
            if match and not found.is_set():
                self.port = match.group(1)
                found.set()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> str:
        self.stop()
        return self.start()

    def __enter__(self) -> "BoardProcess":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class AttachedBoard:
    """A board already running its firmware, reached at a pyserial URL (a local port, or
    rfc2217://host:port served by `semhil serve`); semhil neither starts nor resets it."""

    restart = None  # no way to reset it from here: a silent board is reported, not reset

    def __init__(self, url: str):
        self.port = url

    def __enter__(self) -> "AttachedBoard":
        return self

    def __exit__(self, *exc) -> None:
        pass


def open_board(board: Board, firmware: Path, probe=None, port_url: str | None = None, place=None):
    """The board as something to start, restart and stop: a native process, QEMU, (with a
    discovery.ProbeChoice) a silicon board flashed through its ST-LINK, a MicroPython board given the
    bundle's native module, (with port_url) a board already running at a serial port or network URL,
    or (with a places.PlaceChoice) the board of a labgrid place, held while it is open."""
    if place:
        from .places.board import PlaceBoard
        return PlaceBoard(board, firmware, place)
    if port_url:
        return AttachedBoard(port_url)
    if board.run_kind == "micropython":  # firmware: the bundle's native module; probe: the board's USB serial number
        from .micropython.board import open_micropython
        return open_micropython(board, firmware, probe.serial if probe else None)
    if board.run_kind == "probe":
        from .discovery import choose_probe
        from .flash import ProbeBoard
        probe = probe or choose_probe(board, None, None, None)  # raises: says how to name the probe
        return ProbeBoard(board, firmware, probe.serial, probe.tool, reset_line=probe.reset_line)
    return BoardProcess(board, firmware)

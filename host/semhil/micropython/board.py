"""A MicroPython board running semhil's program (device/micropython/semhil_dut.py) with the bundle's
native module, with the interface of runners.BoardProcess (start, restart, stop, port):

- micropython-unix: MicroPython for this computer, a process whose stdin/stdout is a pseudo-terminal;
- QEMU (micropython.port = "qemu"): MicroPython's QEMU port started like any QEMU board, then the
  module and program copied with mpremote (deploy.py);
- silicon: the board's own MicroPython, found by its USB serial number, then the same copy.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
import tty
from pathlib import Path

from ..boards import Board
from ..errors import SemhilError
from ..runners import BoardProcess
from .deploy import check_module, deploy, parse_facts, probe_code, read_module, release
from .home import build_micropython
from .natmod import PROGRAM


def timer_of(board: Board) -> str:
    """The program's clock: time.ticks_cpu (cycles) on silicon, time.ticks_us elsewhere."""
    return "cpu" if board.latency_source == "cycles" else "us"


def start_code(board: Board, module_dir: Path) -> str:
    folders = [str(module_dir), str(PROGRAM.parent)]
    return f"import sys; sys.path[:0] = {folders!r}; import semhil_dut; semhil_dut.main({board.name!r}, {timer_of(board)!r})"


class UnixMicroPython(BoardProcess):
    """MicroPython's unix port running the program, its stdin/stdout the master side of a pseudo-terminal
    whose other side (`port`) the host opens like a serial port."""

    def __init__(self, board: Board, module: Path):  # not BoardProcess.__init__: there is no QEMU or native command
        self.board, self.module = board, Path(module)
        self.process: subprocess.Popen | None = None
        self.port: str | None = None
        self._slave: int | None = None
        self.output: list[str] = []

    def start(self) -> str:
        executable = build_micropython("unix")
        asked = subprocess.run([str(executable), "-c", probe_code()], capture_output=True, text=True, timeout=30)
        check_module(parse_facts(asked.stdout + asked.stderr, self.board.name), read_module(self.module), self.board.name)
        master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline between the program's bytes and the host
        self.process = subprocess.Popen([str(executable), "-c", start_code(self.board, self.module.parent)], stdin=master,
                                        stdout=master, stderr=subprocess.PIPE, text=True)
        os.close(master)
        self._slave, self.port = slave, os.ttyname(slave)  # held open: the pty lives while the board does
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        return self.port

    def _drain(self, process: subprocess.Popen) -> None:
        for line in process.stderr:
            self.output.append(line.rstrip())

    def stop(self) -> None:
        super().stop()
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None


class DeployedMicroPython:
    """A MicroPython board reached through its REPL's serial port: QEMU started here, or silicon found by
    its USB serial number; the module and the program are copied and started on every (re)start."""

    def __init__(self, board: Board, module: Path, serial_number: str | None = None):
        self.board, self.module = board, Path(module)
        self.serial_number = serial_number
        self.qemu = None
        self.port: str | None = None

    def start(self) -> str:
        if self.board.micropython_port == "qemu":
            self.qemu = BoardProcess(self.board, build_micropython("qemu", self.board.micropython_board))
            self.port = self.qemu.start()
            connect = self.port
        else:
            connect, self.port = self._silicon_port()
        try:
            deploy(connect, self.module, PROGRAM, self.board.name, timer_of(self.board))
        except BaseException:
            self.stop()
            raise
        return self.port

    @property
    def process(self) -> subprocess.Popen | None:
        """QEMU's process (None on silicon)."""
        return self.qemu.process if self.qemu else None

    def _silicon_port(self) -> tuple[str, str]:
        from ..discovery import port_for_serial
        if not self.serial_number:
            raise SemhilError(f"board {self.board.name} runs its own MicroPython on USB: name it by its USB serial number "
                              "(a hardware map's probe_serial, or `semhil boards --detect`)")
        return f"id:{self.serial_number}", port_for_serial(self.serial_number, 5.0)

    def stop(self) -> None:
        if self.qemu:
            self.qemu.stop()
            self.qemu = None
        elif self.port:
            release(self.port)  # the board goes back to its REPL for the next user
        self.port = None

    def restart(self) -> str:
        self.stop()
        time.sleep(0.1)
        return self.start()

    def __enter__(self) -> "DeployedMicroPython":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def open_micropython(board: Board, module: Path, serial_number: str | None = None):
    if board.micropython_port == "unix":
        return UnixMicroPython(board, module)
    return DeployedMicroPython(board, module, serial_number)

"""Flash a firmware onto a board through its ST-LINK (openocd, pyocd or st-flash), reset it, and
ProbeBoard: a silicon board with the same interface as runners.BoardProcess."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import serial

from .boards import FLASH_TOOLS, Board, board_names, load_board
from .discovery import port_for_serial
from .errors import SemhilError

INSTALL_HINTS = {
    "openocd": "apt-get install openocd (0.12 or newer)",
    "pyocd": "pip install pyocd (in semhil's venv: .venv/bin/pip install pyocd; Debian's python3-pyocd is too old)",
    "st-flash": "apt-get install stlink-tools",
    "arm-none-eabi-objcopy": "apt-get install binutils-arm-none-eabi (or `make toolchain` as root)",
}
TOOL_TIMEOUT_S = 180.0
TAIL_LINES = 8


def require_probe_board(board: Board) -> None:
    if board.run_kind != "probe":
        probes = [n for n in board_names() if load_board(n).run_kind == "probe"]
        raise SemhilError(f"board {board.name} is a {board.run_kind} board and is not flashed: it gets its firmware when "
                          f"started (`semhil run --board {board.name}`); boards flashed through a probe: {', '.join(probes)}")


def choose_tool(board: Board, tool: str | None) -> str:
    require_probe_board(board)
    tool = tool or board.flash_tool
    if tool not in FLASH_TOOLS:
        raise SemhilError(f"flash tool {tool!r} is not one of: {', '.join(FLASH_TOOLS)}")
    return tool


def _tcl_word(text: str) -> str:
    return f"{{{text}}}" if re.search(r"[\s{}\[\]$\\;\"]", text) else text


def _openocd_start(board: Board, probe_serial: str | None) -> list[str]:
    # `adapter serial` needs OpenOCD 0.12; 0.11 and older spell it `hla_serial`
    serial_select = ["-c", f"adapter serial {probe_serial}"] if probe_serial else []
    return ["openocd", "-f", "interface/stlink.cfg", *serial_select, "-f", f"target/{board.openocd_target}.cfg"]


def binary_path(firmware_elf: Path) -> Path:
    """st-flash writes raw binaries: the .bin goes next to the ELF, in the build folder."""
    return Path(firmware_elf).with_suffix(".bin")


def objcopy_command(firmware_elf: Path) -> list[str]:
    return ["arm-none-eabi-objcopy", "-O", "binary", str(firmware_elf), str(binary_path(firmware_elf))]


def flash_command(board: Board, firmware_elf: Path, tool: str | None = None, probe_serial: str | None = None) -> list[str]:
    """The command line that writes firmware_elf into the board's flash and resets the board to run it."""
    tool = choose_tool(board, tool)
    elf = Path(firmware_elf)
    if tool == "openocd":
        return [*_openocd_start(board, probe_serial), "-c", f"program {_tcl_word(str(elf))} verify reset exit"]
    if tool == "pyocd":
        return ["pyocd", "flash", "-t", board.pyocd_target, *(["-u", probe_serial] if probe_serial else []), str(elf)]
    flash_origin = board.memory_origins[0]
    return ["st-flash", *(["--serial", probe_serial] if probe_serial else []), "--reset", "write",
            str(binary_path(elf)), f"0x{flash_origin:08x}"]


def flash_steps(board: Board, firmware_elf: Path, tool: str | None = None, probe_serial: str | None = None) -> list[list[str]]:
    """Every command flashing takes, in order: st-flash needs the ELF made into a .bin first."""
    tool = choose_tool(board, tool)
    command = flash_command(board, firmware_elf, tool, probe_serial)
    return [objcopy_command(Path(firmware_elf)), command] if tool == "st-flash" else [command]


def reset_command(board: Board, tool: str | None = None, probe_serial: str | None = None) -> list[str]:
    """The command line that resets the board through its probe and lets it run."""
    tool = choose_tool(board, tool)
    if tool == "openocd":
        return [*_openocd_start(board, probe_serial), "-c", "init; reset run; exit"]
    if tool == "pyocd":
        return ["pyocd", "reset", "-t", board.pyocd_target, *(["-u", probe_serial] if probe_serial else [])]
    return ["st-flash", *(["--serial", probe_serial] if probe_serial else []), "reset"]


def _failure_hint(command: list[str], output: str) -> str:
    if command[0] == "arm-none-eabi-objcopy":
        return "the firmware ELF may be damaged: build it again"
    if command[0] == "openocd" and "adapter serial" in output and "invalid command" in output:
        return "this OpenOCD has no `adapter serial` (added in 0.12): upgrade OpenOCD or use --tool pyocd or st-flash"
    if command[0] == "pyocd" and re.search(r"target type \S+ not recognized", output, re.IGNORECASE):
        return f"pyocd needs the target's CMSIS pack: `pyocd pack install {command[command.index('-t') + 1]}`"
    return ("check the USB cable, that the probe serial is right (`semhil boards --detect`), that no other program "
            "(a debugger, another flash) holds the probe, and that udev rules give you access to it")


def require_tool(tool: str, what: str) -> None:
    if shutil.which(tool) is None:
        raise SemhilError(f"{tool} not found (needed for {what}): install it with `{INSTALL_HINTS[tool]}`"
                          + ("" if tool == "arm-none-eabi-objcopy" else f", or choose another tool ({', '.join(FLASH_TOOLS)}) with --tool or a hardware map's tool key"))


def run_tool(command: list[str], what: str) -> str:
    """Run one flashing command; its output, or an error saying how to get the tool or what it said."""
    require_tool(command[0], what)
    try:
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SemhilError(f"{what}: `{shlex.join(command)}` did not finish within {TOOL_TIMEOUT_S:g} s; "
                          f"{_failure_hint(command, '')}") from None
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = [line.strip() for line in output.splitlines() if line.strip()][-TAIL_LINES:]
        raise SemhilError(f"{what} failed: `{shlex.join(command)}` exited with {done.returncode}; it said: "
                          + (" | ".join(tail) or "nothing") + f"; {_failure_hint(command, output)}")
    return output


def flash(board: Board, firmware_elf: Path, tool: str | None = None, probe_serial: str | None = None,
          dry_run: bool = False) -> list[list[str]]:
    """Flash firmware_elf onto the board (or, with dry_run, only work out how). Returns the commands."""
    steps = flash_steps(board, firmware_elf, tool, probe_serial)
    if not dry_run:
        if not Path(firmware_elf).is_file():
            raise SemhilError(f"firmware {firmware_elf} does not exist; build it with `semhil build BUNDLE --board {board.name}`")
        for step in steps:  # every tool present before the first one runs
            require_tool(step[0], f"flashing {board.name}")
        for step in steps:
            run_tool(step, f"flashing {board.name}")
    return steps


def reset(board: Board, tool: str | None = None, probe_serial: str | None = None) -> None:
    run_tool(reset_command(board, tool, probe_serial), f"resetting {board.name}")


def reset_through_serial_lines(port: str, line: str = "dtr", pulse_s: float = 0.1) -> None:
    """Reset a board whose NRST is wired to the serial adapter's DTR or RTS (an external USB-serial
    adapter with a reset transistor, as on Arduino-style boards): assert the line for pulse_s, then
    release it. The ST-LINK virtual COM port of Nucleo and Discovery boards drives no reset line; on
    those, reset through the probe (reset_command)."""
    if line not in ("dtr", "rts"):
        raise SemhilError(f"reset line {line!r} is not 'dtr' or 'rts'")
    port_handle = serial.Serial()
    port_handle.port = port
    port_handle.dtr = port_handle.rts = False  # set before open, so opening does not pulse the line itself
    try:
        port_handle.open()
    except serial.SerialException as e:
        raise SemhilError(f"cannot open serial port {port} to reset the board: {e}") from None
    try:
        setattr(port_handle, line, True)
        time.sleep(pulse_s)
        setattr(port_handle, line, False)
    except (serial.SerialException, OSError) as e:
        raise SemhilError(f"serial port {port} has no {line.upper()} line to reset the board through ({e}); "
                          "reset through the probe instead (reset = \"probe\" in the hardware map)") from None
    finally:
        port_handle.close()


class ProbeBoard:
    """A silicon board on an ST-LINK, with BoardProcess's interface. The board is named by its probe's
    serial number; its port is looked up by that serial on every start and restart."""

    PORT_WAIT_S = 5.0  # the ST-LINK's VCP may re-enumerate after flashing

    def __init__(self, board: Board, firmware_elf: Path, probe_serial: str, tool: str | None = None,
                 already_flashed: bool = False, reset_line: str = "probe"):
        self.board = board
        self.firmware = Path(firmware_elf)
        self.probe_serial = probe_serial
        self.tool = choose_tool(board, tool)
        self.flashed = already_flashed
        self.reset_line = reset_line  # probe, or the serial port's dtr or rts
        self.port: str | None = None

    def start(self) -> str:
        if not self.flashed:
            flash(self.board, self.firmware, self.tool, self.probe_serial)
            self.flashed = True
        self.port = port_for_serial(self.probe_serial, self.PORT_WAIT_S)
        return self.port

    def restart(self) -> str:
        if self.reset_line == "probe":
            reset(self.board, self.tool, self.probe_serial)
        else:
            reset_through_serial_lines(port_for_serial(self.probe_serial, self.PORT_WAIT_S), self.reset_line)
        self.port = port_for_serial(self.probe_serial, self.PORT_WAIT_S)
        return self.port

    def stop(self) -> None:
        self.port = None  # the board keeps running its firmware; there is no process to end

    def __enter__(self) -> "ProbeBoard":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

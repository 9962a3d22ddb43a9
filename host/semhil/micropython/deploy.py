"""Putting the device half on a MicroPython board over its REPL serial port, with mpremote: probe the
board, check that it can load the native module (.mpy version, architecture, free heap), copy the
module and the program into a RAM filesystem at /ram and start the program.

The RAM filesystem (device/micropython/semhil_ramfs.py) serves boards without a writable filesystem
(QEMU's qemu port has only a read-only ROMFS) and silicon boards alike: nothing is left on a board's
flash and no flash is worn. A soft reset forgets it."""
from __future__ import annotations

import ast
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import serial
import serial.tools.list_ports

from ..errors import SemhilError
from ..paths import DEVICE_DIR
from ..protocol import FrameError, FrameReader, MsgType, encode_frame

RAMFS = DEVICE_DIR / "micropython" / "semhil_ramfs.py"
MODULE_NAME, PROGRAM_NAME = "semhil_model.mpy", "semhil_dut.py"
TIMERS = ("us", "cpu")
FACTS_MARK = "SEMHIL-FACTS"

# py/persistentcode.h: MP_NATIVE_ARCH_* in order (0: no native code)
ARCHES = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
          "xtensa", "xtensawin", "rv32imc", "rv64imc")
# MPY_FEATURE_ARCH_TEST: a Thumb board also loads modules built for an earlier Thumb arch of this list
# (checked on QEMU: features0 built for armv7emsp loads and runs on the armv7emdp board)
THUMB = ("armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp")
# MicroPython's docs/reference/mpyfiles.rst: the releases that use each .mpy version
RELEASES = {(6, 3): "MicroPython 1.23 or newer", (6, 2): "MicroPython 1.22", (6, 1): "MicroPython 1.20 or 1.21",
            (6, 0): "MicroPython 1.19"}

# Free heap (at connect time) that copying a module to /ram and importing it needs: the file (kept as
# mpremote's 256-byte chunks, 1.125x its size in 16-byte GC blocks) + its loaded code and data (1x)
# + the RAM filesystem's code, mpremote's commands and the import. Smallest free heap with which
# copy + import + call succeeded on QEMU MPS2_AN500: 1208 B module -> 18576, 3725 -> 22256,
# 8377 -> 26912, 14529 -> 37984, 32957 -> 77488; 65725 fails with all of its 139696.
HEAP_PER_BYTE, HEAP_MARGIN = 2.25, 20 * 1024
PROBE_TIMEOUT_S = 30            # a soft reset and one line; a board that needs longer is not at its REPL
LOAD_BYTES_PER_S = 1024         # mpremote's cp over the REPL, slowest case (QEMU: about 5 KB/s)


@dataclass(frozen=True)
class BoardFacts:
    micropython: str            # sys.implementation.version, e.g. "1.29.0-preview"
    machine: str                # sys.implementation._machine, e.g. "mps2-an500 with Cortex-M7"
    mpy_version: int | None     # None: this MicroPython loads no .mpy files at all
    mpy_sub_version: int
    arch: str | None            # None: no native code (only bytecode .mpy files)
    heap_free: int              # after gc.collect()
    heap_used: int


@dataclass(frozen=True)
class ModuleFile:
    path: Path
    version: int
    sub_version: int
    arch: str | None            # None: bytecode only
    size: int


def _mpy_version(version: int, sub_version: int) -> str:
    return f"{version}.{sub_version}"


def _release(version: int, sub_version: int) -> str:
    return RELEASES.get((version, sub_version), f"a MicroPython with .mpy version {_mpy_version(version, sub_version)}")


def _decode_arch(feature_byte: int) -> str | None:
    index = (feature_byte >> 2) & 0x2F  # MPY_FEATURE_DECODE_ARCH; 0x40 (arch flags follow) is not part of it
    return ARCHES[index] if index < len(ARCHES) else f"arch #{index}"


def probe_code() -> str:
    """MicroPython code that prints one line: FACTS_MARK and a Python literal of the board's facts."""
    return ("import sys, gc; gc.collect(); i = sys.implementation; "
            f"print({FACTS_MARK!r}, repr((tuple(i.version), getattr(i, '_machine', ''), getattr(i, '_mpy', None), "
            "gc.mem_free(), gc.mem_alloc())))")


def parse_facts(text: str, board_name: str) -> BoardFacts:
    """The facts in mpremote's output of probe_code()."""
    line = next((ln for ln in text.splitlines() if ln.startswith(FACTS_MARK + " ")), None)
    if line is None:
        printed = " | ".join(text.strip().splitlines()[-5:]) or "nothing"
        raise SemhilError(f"board {board_name} did not answer semhil's probe (it printed: {printed}); "
                          "check that it runs MicroPython and is at its REPL, not running a program")
    try:
        version, machine, mpy, free, used = ast.literal_eval(line[len(FACTS_MARK) + 1:])
        release = ".".join(str(v) for v in version[:3]) + (f"-{version[3]}" if len(version) > 3 and version[3] else "")
    except (ValueError, SyntaxError, TypeError) as e:
        raise SemhilError(f"board {board_name} answered semhil's probe with a garbled line {line!r}: {e}") from None
    if mpy is None:
        return BoardFacts(release, machine, None, 0, None, free, used)
    feature = (mpy >> 8) & 0xFF  # _mpy is the header's bytes 1 and 2 as one int (plus arch flags above them)
    return BoardFacts(release, machine, mpy & 0xFF, feature & 3, _decode_arch(feature), free, used)


def read_module(path: Path) -> ModuleFile:
    """The header of a .mpy file: b'M', version, sub-version | arch << 2 (| 0x40), small-int bits."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            header = f.read(4)
    except OSError as e:
        raise SemhilError(f"cannot read MicroPython module {path}: {e.strerror}") from None
    if len(header) < 4 or header[0] != ord("M"):
        raise SemhilError(f"{path} is not a MicroPython .mpy file (it starts with {header!r}, a .mpy with b'M')")
    return ModuleFile(path, header[1], header[2] & 3, _decode_arch(header[2]), path.stat().st_size)


def heap_needed(module: ModuleFile) -> int:
    return int(HEAP_PER_BYTE * module.size) + HEAP_MARGIN


def _arch_loads(module_arch: str, board_arch: str) -> bool:
    if module_arch in THUMB and board_arch in THUMB:
        return THUMB.index(module_arch) <= THUMB.index(board_arch)
    return module_arch == board_arch


def check_module(facts: BoardFacts, module: ModuleFile, board_name: str) -> None:
    """Raise SemhilError (one line) unless the board can load the module."""
    name, native = module.path.name, module.arch is not None
    if facts.mpy_version is None:
        raise SemhilError(f"board {board_name}'s MicroPython {facts.micropython} cannot load .mpy files "
                          f"(built without MICROPY_PERSISTENT_CODE_LOAD): use a MicroPython firmware that can")
    board_v = (facts.mpy_version, facts.mpy_sub_version)
    module_v = (module.version, module.sub_version)
    if board_v[0] != module_v[0] or (native and board_v != module_v):
        what = (f"board {board_name} runs MicroPython {facts.micropython} (.mpy {_mpy_version(*board_v)}) "
                f"but module {name} is .mpy {_mpy_version(*module_v)}")
        if board_v < module_v:
            raise SemhilError(f"{what}: the board's MicroPython is too old, update its firmware to "
                              f"{_release(*module_v)}")
        raise SemhilError(f"{what}: the module is too old for the board's MicroPython, build it with "
                          f"{_release(*board_v)} (MICROPY_HOME)")
    if native and facts.arch is None:
        raise SemhilError(f"board {board_name}'s MicroPython {facts.micropython} cannot load native modules "
                          f"(built without MICROPY_PERSISTENT_CODE_LOAD_NATIVE) and module {name} is native code "
                          f"for {module.arch}")
    if native and not _arch_loads(module.arch, facts.arch):
        raise SemhilError(f"module {name} is built for {module.arch} but board {board_name} ({facts.machine}) is "
                          f"{facts.arch}: build the module with ARCH={facts.arch}")
    if facts.heap_free < heap_needed(module):
        raise SemhilError(f"board {board_name} has {facts.heap_free} bytes of free heap but loading module {name} "
                          f"({module.size} bytes) needs about {heap_needed(module)} ({HEAP_PER_BYTE} x its size "
                          f"+ {HEAP_MARGIN}): use a smaller model or a board (or MicroPython build) with more heap")


def start_code(board_name: str, timer: str) -> str:
    return (f"import sys; sys.path.insert(0, '/ram'); import semhil_dut; "
            f"semhil_dut.main({board_name!r}, {timer!r})")


def _mpremote() -> list[str]:
    from .home import mpremote_command
    return mpremote_command()


def deploy_commands(connect: str, module: Path, program: Path, board_name: str, timer: str) -> list[list[str]]:
    """The probe command, then the one that mounts /ram, copies module and program there and starts
    the program. `connect`: a serial port, or id:<USB serial number>. A `+` ends each cp's list of
    files (cp takes every argument up to it). With --no-follow, mpremote exits once the program runs."""
    if timer not in TIMERS:
        raise SemhilError(f"timer {timer!r} for board {board_name}: use one of {', '.join(TIMERS)}")
    mpremote = [*_mpremote(), "connect", connect]
    return [
        [*mpremote, "exec", probe_code()],
        [*mpremote, "run", str(RAMFS),
         "cp", str(module), f":/ram/{MODULE_NAME}", "+",
         "cp", str(program), f":/ram/{PROGRAM_NAME}", "+",
         "exec", "--no-follow", start_code(board_name, timer)],
    ]


MPREMOTE_HINT = ("check that no other program holds the port (a terminal, another mpremote or semhil session), "
                 "that the board runs MicroPython and that it is at its REPL: a program still running there "
                 "(other than semhil's own, which semhil releases) must be stopped, e.g. by resetting the board")


def _shown(command: list[str]) -> str:
    args = command[command.index("connect"):] if "connect" in command else command
    return "mpremote " + shlex.join(a if len(a) <= 60 else a[:57] + "..." for a in args)


def run_mpremote(command: list[str], board_name: str, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """mpremote's output; SemhilError with the command, its last lines and a hint if it fails. The
    timeout matters: on a pseudo-terminal (QEMU) mpremote waits forever for a board that does not answer."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SemhilError(f"{_shown(command)} did not finish within {timeout_s:.0f} s on board {board_name}; "
                          f"{MPREMOTE_HINT}") from None
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:]) or "nothing"
        raise SemhilError(f"{_shown(command)} failed on board {board_name} (exit code {done.returncode}, "
                          f"it printed: {tail}); {MPREMOTE_HINT}")
    return done.stdout


def _port_path(connect: str) -> str:
    """The serial port of an mpremote connect target (a path, port:<path> or id:<USB serial number>)."""
    if connect.startswith("id:"):
        serial_number = connect[len("id:"):]
        for port in serial.tools.list_ports.comports():
            if port.serial_number == serial_number:
                return port.device
        raise SemhilError(f"no serial port with USB serial number {serial_number}: is the board plugged in?")
    return connect[len("port:"):] if connect.startswith("port:") else connect


def release(port: str, timeout_s: float = 2.0) -> bool:
    """Ask a semhil_dut that may still run on the board (from an earlier session) to return to the REPL.
    True if it answered RELEASED; nothing answering is fine. A board at its REPL takes the frame's bytes
    for REPL keys (Ctrl-D among them: a soft reset at worst, which mpremote does anyway). The timeout
    covers QEMU: for up to 1 s after a pty's last user closed it, QEMU drops what the board sends."""
    try:
        with serial.serial_for_url(_port_path(port), baudrate=115200, timeout=0.05) as link:
            link.write(b"\x00" + encode_frame(MsgType.RELEASE, 0))
            link.flush()
            reader = FrameReader(link)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                try:
                    frame = reader.read_frame(deadline - time.monotonic())
                except FrameError:
                    continue  # the REPL's echo, or a half frame
                if frame is not None and frame.type == MsgType.RELEASED:
                    time.sleep(0.2)  # the program returns to the REPL
                    return True
    except (serial.SerialException, OSError, ValueError, SemhilError):
        pass
    return False


def deploy(connect: str, module: Path, program: Path, board_name: str, timer: str,
           dry_run: bool = False) -> list[list[str]]:
    """Release the board, probe it, check that it can load the module, copy module and program to its
    RAM filesystem and start the program. Returns the mpremote commands (with dry_run: runs nothing)."""
    commands = deploy_commands(connect, module, program, board_name, timer)
    if dry_run:
        return commands
    module_file = read_module(module)
    if not Path(program).is_file():
        raise SemhilError(f"program {program} for board {board_name} does not exist")
    release(connect)
    facts = parse_facts(run_mpremote(commands[0], board_name), board_name)
    check_module(facts, module_file, board_name)
    size = module_file.size + Path(program).stat().st_size
    run_mpremote(commands[1], board_name, timeout_s=PROBE_TIMEOUT_S + size / LOAD_BYTES_PER_S)
    return commands

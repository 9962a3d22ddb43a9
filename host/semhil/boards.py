"""Board files: boards/<name>.toml, validated with errors that name the file, the key and what is allowed."""
from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import SemhilError
from .paths import BOARDS_DIR


@dataclass(frozen=True)
class Family:
    """What a porting layer (device/ports/<family>/) can drive."""
    cores: tuple[str, ...]
    uarts: tuple[str, ...]
    flash_origin: int = 0
    ram_origin: int = 0
    pins: bool = False        # the board file names the UART's TX and RX pins
    clock: bool = False       # the board file says how the clock is made ([clock])
    layers: tuple[str, ...] = ()  # shared code under the port: device/ports/<layer>/


STM32, STM32_UARTS = ("cortex-m", "stm32"), ("USART1", "USART2", "USART3")
FAMILIES = {
    "native": Family(("native",), ("pty",)),
    "stm32f4": Family(("cortex-m4",), STM32_UARTS, 0x08000000, 0x20000000, pins=True, clock=True, layers=STM32),
    "stm32f7": Family(("cortex-m7",), STM32_UARTS, 0x08000000, 0x20000000, pins=True, clock=True, layers=STM32),
    "stm32h7": Family(("cortex-m7",), STM32_UARTS, 0x08000000, 0x24000000, pins=True, clock=True, layers=STM32),  # AXI SRAM
    "mps2": Family(("cortex-m7",), ("UART0",), 0x00000000, 0x20000000, layers=("cortex-m",)),
    # MicroPython runs the device half as a native module (device/micropython/): no port of semhil's
    "micropython": Family(("native", "cortex-m4", "cortex-m7"), ("repl",)),
}
RUN_KINDS = ("native", "qemu", "probe", "micropython")
LATENCY_SOURCES = {"cpu-time": "ns", "icount": "instructions", "cycles": "cycles", "ticks-us": "us"}
MICROPYTHON_ARCHES = ("x64", "armv7emsp", "armv7emdp")
MICROPYTHON_PORTS = ("unix", "qemu")  # MicroPython semhil builds from MICROPY_HOME; without one, the board's own
CLOCK_SOURCES = ("emulated", "hsi", "hse-crystal", "hse-bypass")
FLASH_TOOLS = ("openocd", "pyocd", "st-flash")
PIN = re.compile(r"P([A-K])(\d{1,2})$")

# key -> (type, required); nested tables are dicts of the same shape
SCHEMA = {
    "name": (str, True), "family": (str, True), "core": (str, True), "clock_hz": (int, True),
    "flash_bytes": (int, False), "ram_bytes": (int, False), "stack_bytes": (int, False),
    "clock": ({"source": (str, True), "hse_hz": (int, False)}, False),
    "uart": ({"instance": (str, True), "baud": (int, True), "tx": (str, False), "rx": (str, False)}, True),
    "run": ({"kind": (str, True), "machine": (str, False)}, True),
    "flash": ({"tool": (str, True), "openocd_target": (str, True), "pyocd_target": (str, True)}, False),
    "usb": ({"vid": (int, True), "pid": (int, True)}, False),
    "latency": ({"source": (str, True)}, True),
    "micropython": ({"arch": (str, True), "port": (str, False), "board": (str, False)}, False),
}
CHOICES = {"family": tuple(FAMILIES), "run.kind": RUN_KINDS, "latency.source": tuple(LATENCY_SOURCES),
           "clock.source": CLOCK_SOURCES, "flash.tool": FLASH_TOOLS, "micropython.arch": MICROPYTHON_ARCHES,
           "micropython.port": MICROPYTHON_PORTS}


@dataclass(frozen=True)
class Board:
    name: str
    family: str
    core: str
    clock_hz: int
    uart_instance: str
    uart_baud: int
    run_kind: str
    latency_source: str
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    stack_bytes: int | None = None
    clock_source: str | None = None
    hse_hz: int | None = None
    uart_tx: str | None = None
    uart_rx: str | None = None
    qemu_machine: str | None = None
    flash_tool: str | None = None       # the default flasher of a probe board
    openocd_target: str | None = None   # e.g. stm32f4x (target/stm32f4x.cfg)
    pyocd_target: str | None = None     # e.g. stm32f446retx
    usb_vid: int | None = None          # the probe's USB IDs, for `semhil boards --detect`
    usb_pid: int | None = None
    micropython_arch: str | None = None   # the native module's architecture (a micropython board)
    micropython_port: str | None = None   # unix or qemu: MicroPython semhil builds; None: the board's own
    micropython_board: str | None = None  # the MicroPython board of the qemu port, e.g. MPS2_AN500
    path: Path | None = None

    @property
    def latency_unit(self) -> str:
        return LATENCY_SOURCES[self.latency_source]

    @property
    def is_mcu(self) -> bool:
        return self.core != "native"

    @property
    def port_dirs(self) -> tuple[str, ...]:
        """device/ports/ folders the firmware is built from: the shared layers, then the family's port."""
        return (*FAMILIES[self.family].layers, self.family)

    @property
    def memory_origins(self) -> tuple[int, int]:
        return FAMILIES[self.family].flash_origin, FAMILIES[self.family].ram_origin


def _check(table: dict, schema: dict, where: str, prefix: str = "") -> None:
    for key, value in table.items():
        full = prefix + key
        if key not in schema:
            hint = difflib.get_close_matches(key, schema, n=1)
            raise SemhilError(f"{where}: unknown key '{full}'" + (f" (did you mean '{prefix}{hint[0]}'?)" if hint else "")
                              + f"; allowed: {', '.join(prefix + k for k in schema)}")
        kind, _ = schema[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise SemhilError(f"{where}: '{full}' must be a table ([{full}])")
            _check(value, kind, where, full + ".")
        elif not isinstance(value, kind) or isinstance(value, bool):
            raise SemhilError(f"{where}: '{full}' must be {kind.__name__}, got {value!r}")
        elif full in CHOICES and value not in CHOICES[full]:
            raise SemhilError(f"{where}: '{full}' = {value!r} is not one of: {', '.join(CHOICES[full])}")
    for key, (_, required) in schema.items():
        if required and key not in table:
            raise SemhilError(f"{where}: missing key '{prefix}{key}'")


def _check_consistent(data: dict, where: str) -> None:
    """What one key allows depends on another: the family's cores and UARTs, what a kind of board needs."""
    family, kind = FAMILIES[data["family"]], data["run"]["kind"]

    def need(condition: bool, message: str) -> None:
        if not condition:
            raise SemhilError(f"{where}: {message}")

    need(data["core"] in family.cores, f"'core' = {data['core']!r} is not one of: {', '.join(family.cores)} (family {data['family']})")
    uart = data["uart"]
    need(uart["instance"] in family.uarts,
         f"'uart.instance' = {uart['instance']!r} is not one of: {', '.join(family.uarts)} (family {data['family']})")
    for key in ("tx", "rx"):
        if family.pins:
            need(key in uart, f"missing key 'uart.{key}' (the pin of the ST-LINK virtual COM port, e.g. 'PA2')")
            need(PIN.match(uart[key]) is not None, f"'uart.{key}' = {uart[key]!r} is not a pin name like 'PA2' or 'PD8'")
        else:
            need(key not in uart, f"'uart.{key}': family {data['family']} has fixed UART pins; remove the key")
    if family.clock:
        need("clock" in data, "missing table [clock] (source = 'hsi', 'hse-crystal', 'hse-bypass' or 'emulated')")
        if data["clock"]["source"].startswith("hse"):
            need("hse_hz" in data["clock"], f"'clock.hse_hz' is required with clock.source = {data['clock']['source']!r}")
    else:
        need("clock" not in data, f"[clock]: family {data['family']} has a fixed clock; remove the table")
    if data["core"] != "native":
        for key in ("flash_bytes", "ram_bytes", "stack_bytes"):
            need(key in data, f"missing key '{key}' (the board's memory, in bytes)")
        need(data["stack_bytes"] % 8 == 0 and 0 < data["stack_bytes"] < data["ram_bytes"],
             f"'stack_bytes' = {data['stack_bytes']} must be a multiple of 8 and less than ram_bytes")
        need(data["clock_hz"] > 0, "'clock_hz' must be the core clock in Hz")
    need(kind != "qemu" or "machine" in data["run"], "'run.machine' is required when run.kind = 'qemu' (e.g. 'netduinoplus2')")
    need(kind == "probe" or "flash" not in data, f"[flash] is only for run.kind = 'probe' boards, not {kind!r}")
    if kind == "probe":
        need("flash" in data, "missing table [flash] (tool, openocd_target, pyocd_target) for a board flashed through a probe")
        need("usb" in data, "missing table [usb] (vid, pid of the ST-LINK) for a board found on USB")
        need(data["latency"]["source"] == "cycles", "a silicon board measures latency in 'cycles' (DWT)")
    need((kind == "micropython") == (data["family"] == "micropython"),
         "run.kind = 'micropython' goes with family = 'micropython' (and only with it)")
    need((kind == "micropython") == ("micropython" in data),
         "[micropython] (arch, and port for MicroPython semhil builds) is for run.kind = 'micropython' boards only, and they need it")
    micropython = data.get("micropython", {})
    port = micropython.get("port")
    need(("board" in micropython) == (port == "qemu"), "'micropython.board' (e.g. 'MPS2_AN500') goes with micropython.port = 'qemu'")
    need(port != "qemu" or "machine" in data["run"], "'run.machine' is required with micropython.port = 'qemu' (e.g. 'mps2-an500')")
    need(kind != "micropython" or port is not None or "usb" in data,
         "missing table [usb] (vid, pid of the board's USB serial) for a MicroPython board found on USB")
    if kind == "micropython":
        expected = {"unix": "ticks-us", "qemu": "icount", None: "cycles"}[port]
        need(data["latency"]["source"] == expected, f"'latency.source' must be {expected!r} for a MicroPython board with "
             + (f"micropython.port = {port!r}" if port else "its own MicroPython (time.ticks_cpu: cycles)"))
        return
    expected = {"native": "cpu-time", "qemu": "icount", "probe": "cycles"}[kind]
    need(data["latency"]["source"] == expected, f"'latency.source' must be {expected!r} for run.kind = {kind!r}")


def load_board_file(path: Path) -> Board:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SemhilError(f"{path}: not valid TOML ({e})") from None
    _check(data, SCHEMA, str(path))
    _check_consistent(data, str(path))
    clock, uart, run, flash, usb, micropython = (data.get(k, {}) for k in ("clock", "uart", "run", "flash", "usb", "micropython"))
    return Board(name=data["name"], family=data["family"], core=data["core"], clock_hz=data["clock_hz"],
                 uart_instance=uart["instance"], uart_baud=uart["baud"], run_kind=run["kind"],
                 latency_source=data["latency"]["source"], flash_bytes=data.get("flash_bytes"), ram_bytes=data.get("ram_bytes"),
                 stack_bytes=data.get("stack_bytes"), clock_source=clock.get("source"), hse_hz=clock.get("hse_hz"),
                 uart_tx=uart.get("tx"), uart_rx=uart.get("rx"), qemu_machine=run.get("machine"),
                 flash_tool=flash.get("tool"), openocd_target=flash.get("openocd_target"), pyocd_target=flash.get("pyocd_target"),
                 usb_vid=usb.get("vid"), usb_pid=usb.get("pid"), micropython_arch=micropython.get("arch"),
                 micropython_port=micropython.get("port"), micropython_board=micropython.get("board"), path=path)


def board_names(boards_dir: Path = BOARDS_DIR) -> list[str]:
    return sorted(p.stem for p in boards_dir.glob("*.toml"))


def load_board(name_or_path: str, boards_dir: Path = BOARDS_DIR) -> Board:
    """A board by name (boards/<name>.toml) or by the path of a board file."""
    if name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise SemhilError(f"board file {path} does not exist")
        return load_board_file(path)
    path = boards_dir / f"{name_or_path}.toml"
    if not path.is_file():
        known = board_names(boards_dir)
        hint = difflib.get_close_matches(name_or_path, known, n=1)
        raise SemhilError(f"unknown board '{name_or_path}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                          + f"; known boards: {', '.join(known)}; add one as {boards_dir}/<name>.toml")
    board = load_board_file(path)
    if board.name != name_or_path:
        raise SemhilError(f"{path}: name = {board.name!r} but the file is named {name_or_path!r}; make them equal")
    return board

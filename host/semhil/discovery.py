"""Boards on USB: the ST-LINK virtual COM ports attached now, and the hardware map that names the
board behind each probe. A board is identified by its probe's serial number, never by its /dev
path: the path changes with the order the boards were plugged in.
"""
from __future__ import annotations

import dataclasses
import difflib
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w
from serial.tools import list_ports

from .boards import FLASH_TOOLS, Board, board_names, load_board
from .errors import SemhilError

ST_VID = 0x0483
STLINK_PIDS = frozenset({0x374B, 0x374E, 0x374F, 0x3752, 0x3753, 0x3754})  # ST-LINK/V2-1 and STLINK-V3 with a VCP


@dataclass(frozen=True)
class Probe:
    port: str              # the /dev path now
    vid: int
    pid: int
    serial_number: str     # the probe serial: what openocd, pyocd and st-flash select the probe by
    product: str
    boards: tuple[str, ...]  # board files whose [usb] vid and pid match

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


def probe_boards() -> list[Board]:
    return [b for b in map(load_board, board_names()) if b.usb_vid is not None]


def detect_probes(boards: list[Board] | None = None) -> list[Probe]:
    """The attached ST-LINK virtual COM ports, with the board files that match their USB IDs."""
    boards = probe_boards() if boards is None else boards
    wanted = {(ST_VID, pid) for pid in STLINK_PIDS} | {(b.usb_vid, b.usb_pid) for b in boards if b.usb_vid is not None}
    probes = []
    for info in list_ports.comports():
        if (info.vid, info.pid) not in wanted:
            continue
        names = tuple(sorted(b.name for b in boards if (b.usb_vid, b.usb_pid) == (info.vid, info.pid)))
        probes.append(Probe(info.device, info.vid, info.pid, info.serial_number or "", info.product or "", names))
    return sorted(probes, key=lambda p: p.port)


def describe_attached(probes: list[Probe]) -> str:
    if not probes:
        return "no ST-LINK is attached (plug the board's ST-LINK USB connector in; `semhil boards --detect` lists them)"
    return "attached: " + "; ".join(f"{p.port} ({p.usb_id}, serial {p.serial_number or '?'}"
                                    + (f", {'/'.join(p.boards)}" if p.boards else "") + ")" for p in probes)


def port_for_serial(serial_number: str, wait_s: float = 0.0) -> str:
    """The current /dev path of the probe with this serial number, waiting up to wait_s for it to appear."""
    deadline = time.monotonic() + wait_s
    while True:
        # an STLINK-V3 with two VCPs shows the serial twice: the first port is the target's UART
        ports = sorted(p.device for p in list_ports.comports() if (p.serial_number or "").upper() == serial_number.upper())
        if ports:
            return ports[0]
        if time.monotonic() >= deadline:
            raise SemhilError(f"no serial port belongs to the probe with serial {serial_number}; {describe_attached(detect_probes())}")
        time.sleep(0.2)


@dataclass(frozen=True)
class HardwareMapEntry:
    name: str              # the board file on this probe ("" until a technician fills it in)
    probe_serial: str | None = None  # None: an emulated board, or a board reached only at `port`
    port: str | None = None  # with a probe: where it was last seen (informational); without: the board's URL
    tool: str | None = None  # flasher for this board, overriding the board file's
    reset: str | None = None  # probe (default), or dtr / rts where the serial adapter drives the reset pin
    labgrid_place: str | None = None  # the board is in this labgrid place (acquired for each run, released after)
    labgrid_coordinator: str | None = None  # HOST:PORT of that place's coordinator (default: LG_COORDINATOR)
    comment: str = field(default="", compare=False)

    def probe_choice(self) -> ProbeChoice | None:
        return ProbeChoice(self.probe_serial, self.tool, self.reset or "probe") if self.probe_serial else None

    def place_choice(self):
        from .places.board import PlaceChoice
        return PlaceChoice(self.labgrid_place, self.labgrid_coordinator) if self.labgrid_place else None


MAP_KEYS = {"name": True, "probe_serial": False, "port": False, "tool": False, "reset": False,  # key -> required
            "labgrid_place": False, "labgrid_coordinator": False}
RESET_LINES = ("probe", "dtr", "rts")
MAP_HEADER = """\
# semhil hardware map: the board on each ST-LINK, found by the probe's serial number.
# `port` is where the probe was last seen and is informational: semhil looks the port up by serial.
# A board without a probe is emulated (native, qemu-*: one started per test worker), or, with
# `port`, one already running at that serial port or URL (e.g. rfc2217://rig2:2217). A board in a
# labgrid place has `labgrid_place` (and `labgrid_coordinator`, else LG_COORDINATOR) and nothing else.
# Use it with `semhil flash BUNDLE --board NAME --hardware-map FILE` or `pytest --hardware-map FILE`.
"""


def write_hardware_map(path: Path, entries: list[HardwareMapEntry]) -> None:
    parts = [MAP_HEADER]
    for entry in entries:
        table = {key: getattr(entry, key) for key in MAP_KEYS if getattr(entry, key) is not None}
        parts.append("\n[[board]]\n")  # tomli-w would write a short table inline, with no room for the comment
        parts += [f"# {line}\n" for line in entry.comment.splitlines()]
        parts.append(tomli_w.dumps(table))
    Path(path).write_text("".join(parts))


def read_hardware_map(path: Path) -> list[HardwareMapEntry]:
    path = Path(path)
    if not path.is_file():
        raise SemhilError(f"hardware map {path} does not exist; write one with `semhil boards --generate-hardware-map {path}`")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SemhilError(f"{path}: not valid TOML ({e})") from None
    if set(data) - {"board"}:
        raise SemhilError(f"{path}: unknown key(s) {', '.join(sorted(set(data) - {'board'}))}; a hardware map holds only [[board]] tables")
    tables = data.get("board", [])
    if not isinstance(tables, list):
        raise SemhilError(f"{path}: 'board' must be a list of tables ([[board]])")
    known = board_names()
    entries = []
    for number, table in enumerate(tables, 1):
        where = f"{path}: [[board]] {number}"
        for key, value in table.items():
            if key not in MAP_KEYS:
                hint = difflib.get_close_matches(key, MAP_KEYS, n=1)
                raise SemhilError(f"{where}: unknown key '{key}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                                  + f"; allowed: {', '.join(MAP_KEYS)}")
            if not isinstance(value, str):
                raise SemhilError(f"{where}: '{key}' must be a string, got {value!r}")
        for key, required in MAP_KEYS.items():
            if required and key not in table:
                raise SemhilError(f"{where}: missing key '{key}'")
        name, serial = table["name"], table.get("probe_serial")
        if serial == "":
            raise SemhilError(f"{where}: 'probe_serial' is empty; `semhil boards --detect` shows each probe's serial")
        if not name:
            raise SemhilError(f"{where} (probe {serial}): 'name' is empty; fill in the board on this probe, one of: {', '.join(known)}")
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            raise SemhilError(f"{where}: 'name' = {name!r} is not a board file" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                              + f"; known boards: {', '.join(known)}")
        if table.get("tool") is not None and table["tool"] not in FLASH_TOOLS:
            raise SemhilError(f"{where}: 'tool' = {table['tool']!r} is not one of: {', '.join(FLASH_TOOLS)}")
        if table.get("reset") is not None and table["reset"] not in RESET_LINES:
            raise SemhilError(f"{where}: 'reset' = {table['reset']!r} is not one of: {', '.join(RESET_LINES)}")
        _check_how_reached(load_board(name), table, where)
        if serial and any(e.probe_serial == serial for e in entries):
            raise SemhilError(f"{where}: probe_serial {serial} appears twice; each probe sits on one board")
        entries.append(HardwareMapEntry(name, serial, table.get("port"), table.get("tool"), table.get("reset"),
                                        table.get("labgrid_place"), table.get("labgrid_coordinator")))
    return entries


def _check_how_reached(board: Board, table: dict, where: str) -> None:
    if "labgrid_place" in table:
        others = sorted(set(table) & {"probe_serial", "port", "tool", "reset"})
        if others:
            raise SemhilError(f"{where}: board {board.name} is in labgrid place {table['labgrid_place']!r}, which flashes, "
                              f"resets and serves it: drop {', '.join(others)}")
        return
    if "labgrid_coordinator" in table:
        raise SemhilError(f"{where}: 'labgrid_coordinator' without 'labgrid_place': name the place too")
    if board.run_kind == "probe":
        if "probe_serial" not in table and "port" not in table:
            raise SemhilError(f"{where}: board {board.name} is silicon: give 'probe_serial' (its ST-LINK, to flash it), "
                              "'port' (a serial port or URL where it already runs its firmware) or 'labgrid_place'")
    elif "probe_serial" in table or "tool" in table or table.get("reset", "probe") != "probe":
        raise SemhilError(f"{where}: board {board.name} is emulated (run.kind = {board.run_kind!r}): it has no probe, "
                          "so drop 'probe_serial', 'tool' and 'reset'")


def entry_for_board(entries: list[HardwareMapEntry], board_name: str, path: Path) -> HardwareMapEntry:
    matches = [e for e in entries if e.name == board_name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SemhilError(f"hardware map {path} has no board {board_name!r}; it lists: {', '.join(e.name for e in entries) or 'nothing'}")
    raise SemhilError(f"hardware map {path} lists {len(matches)} boards {board_name!r} (probes "
                      f"{', '.join(e.probe_serial for e in matches)}); choose one with --probe SERIAL")


def hardware_map_entries(probes: list[Probe]) -> list[HardwareMapEntry]:
    """Entries for the detected probes: the board named where exactly one board file matches its USB IDs."""
    entries = []
    for probe in probes:
        if len(probe.boards) == 1:
            entries.append(HardwareMapEntry(probe.boards[0], probe.serial_number, probe.port))
        else:
            choices = ", ".join(probe.boards) if probe.boards else "none of the board files matches " + probe.usb_id
            entries.append(HardwareMapEntry("", probe.serial_number, probe.port,
                                            comment=f"fill in name: the board on this probe ({probe.product or probe.usb_id}); "
                                                    f"candidates: {choices}"))
    return entries


@dataclass(frozen=True)
class ProbeChoice:
    """Which ST-LINK a silicon board hangs on, and the flasher to use (None: the board file's)."""
    serial: str
    tool: str | None = None
    reset_line: str = "probe"  # or the serial port's dtr / rts


def choose_probe(board: Board, probe_serial: str | None, map_path: Path | None, tool: str | None) -> ProbeChoice | None:
    """From --probe or --hardware-map; None for a board that is not on a probe."""
    if probe_serial and map_path:
        raise SemhilError("give the probe with --probe or --hardware-map, not both")
    if board.run_kind != "probe":
        if probe_serial or map_path:
            raise SemhilError(f"board {board.name} is not on a probe (run.kind = {board.run_kind!r}): drop --probe/--hardware-map")
        return None
    if map_path:
        entry = entry_for_board(read_hardware_map(map_path), board.name, map_path)
        if entry.labgrid_place:
            raise SemhilError(f"hardware map {map_path} lists board {board.name} in labgrid place {entry.labgrid_place}: "
                              f"a run flashes it while holding the place (semhil run BUNDLE --place {entry.labgrid_place})")
        if entry.probe_serial is None:
            raise SemhilError(f"hardware map {map_path} lists board {board.name} without a probe, at {entry.port}: "
                              f"run it with --port {entry.port}")
        return dataclasses.replace(entry.probe_choice(), tool=tool or entry.tool)
    if not probe_serial:
        raise SemhilError(f"board {board.name} is on an ST-LINK: name it with --probe SERIAL or --hardware-map FILE "
                          "(`semhil boards --detect` lists the attached probes)")
    return ProbeChoice(probe_serial, tool)


def how_to_reach(board: Board, map_path: Path | None) -> tuple[ProbeChoice | None, str | None, object]:
    """(probe, port URL, places.PlaceChoice) of a board for a run over a rig: a silicon board through its map
    entry's probe, at its entry's URL or in its entry's labgrid place; an emulated board at its entry's URL or
    place, or (None, None, None): started here."""
    entries = read_hardware_map(map_path) if map_path else []
    if board.run_kind != "probe":
        entry = next((e for e in entries if e.name == board.name and (e.port or e.labgrid_place)), None)
        return None, entry.port if entry else None, entry.place_choice() if entry else None
    if map_path is None:
        return choose_probe(board, None, None, None), None, None  # raises: says how to name the probe
    entry = entry_for_board(entries, board.name, map_path)
    return entry.probe_choice(), None if entry.probe_serial else entry.port, entry.place_choice()

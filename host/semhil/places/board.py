"""A board in a labgrid place, with runners.BoardProcess's interface: start() acquires the place
(refused, naming the holder, when someone has it), starts the keeper, opens the place's serial port
(the exporter's ser2net), and flashes a silicon board through the place's debugger; stop() releases
the place. restart() resets through the debugger, else by cycling the place's power port; a place
with neither cannot be reset from here (like a board at --port)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..boards import Board
from .coordinator import Coordinator, PlaceError, coordinator_address
from .keeper import start_keeper, stop_keeper

SERIAL_WAIT_S = 15.0  # the exporter starts ser2net when the place is acquired
DEBUGGERS = ("NetworkUSBDebugger", "USBDebugger")
POWER_DRIVERS = {"NetworkPowerPort": "NetworkPowerDriver", "PDUDaemonPort": "PDUDaemonDriver",
                 "NetworkUSBPowerPort": "USBPowerDriver", "NetworkYKUSHPowerPort": "YKUSHPowerDriver"}


@dataclass(frozen=True)
class PlaceChoice:
    """A labgrid place and its coordinator (None: LG_COORDINATOR, else labgrid's default)."""
    name: str
    coordinator: str | None = None


def board_of_place(place, board_name: str | None) -> str:
    """The board file a place holds: its tag board=NAME; board_name (from --board or a hardware map) must agree."""
    tag = place.tags.get("board")
    if board_name is None:
        if not tag:
            raise PlaceError(f"place {place.name} does not say which board it holds: tag it with a board file's name "
                             f"(labgrid-client -p {place.name} set-tags board=NAME) or give the board (--board)")
        return tag
    if tag and tag != board_name:
        raise PlaceError(f"place {place.name} holds a {tag} (its tag board={tag}), not a {board_name}: "
                         f"give --board {tag}, or choose a place with a {board_name}")
    return board_name


def board_for_place(choice: PlaceChoice, board_name: str | None) -> str:
    with Coordinator(choice.coordinator) as coordinator:
        return board_of_place(coordinator.place(choice.name), board_name)


def serial_url(port) -> str:
    """The pyserial URL of a labgrid NetworkSerialPort (through labgrid's proxy, where the exporter needs one)."""
    from labgrid.util.proxy import proxymanager
    host, tcp_port = proxymanager.get_host_and_port(port)
    if port.protocol == "raw":
        return f"socket://{host}:{tcp_port}"
    return f"rfc2217://{host}:{tcp_port}?ign_set_control"  # ser2net does not answer SET_CONTROL


def openocd_driver(target, board: Board, workdir: Path):
    """labgrid's OpenOCD driver for an ST-LINK board: the ELF and a target script go to the exporter's computer."""
    from labgrid.driver import OpenOCDDriver
    script = Path(workdir) / f"openocd-{board.openocd_target}.cfg"
    script.write_text(f"source [find target/{board.openocd_target}.cfg]\n")
    return OpenOCDDriver(target, name="semhil-openocd", interface_config="stlink.cfg", config=[str(script)],
                         load_commands=["init", "program {filename} verify", "reset run", "shutdown"])


def place_drivers(target, board: Board, firmware: Path | None):
    """(debugger, power) drivers for a place's resources: labgrid's OpenOCD driver where the place has an ST-LINK
    and a silicon board's firmware is to be flashed (it flashes and resets), else a power driver where it has a
    power port (it resets)."""
    from labgrid.factory import target_factory
    kinds = {type(r).__name__ for r in target.resources}
    if board.run_kind == "probe" and firmware and kinds & set(DEBUGGERS):
        return openocd_driver(target, board, Path(firmware).parent), None
    power = next((kind for kind in sorted(kinds) if kind in POWER_DRIVERS), None)
    if power:
        return None, target_factory.drivers[POWER_DRIVERS[power]](target, name="semhil-power")
    return None, None


class PlaceBoard:
    def __init__(self, board: Board, firmware: Path | None, choice: PlaceChoice):
        self.board, self.firmware, self.choice = board, firmware, choice
        self.address = coordinator_address(choice.coordinator)
        self.port: str | None = None
        self.restart = None  # set in start() when the place can reset the board
        self.coordinator: Coordinator | None = None
        self.keeper = None
        self.target = None
        self.debugger = self.power = None

    def start(self) -> str:
        from labgrid.remote.client import Error as LabgridError
        try:
            self._acquire()
            self._open()
        except LabgridError as e:  # e.g. the exporter went away after the place was acquired
            self.stop()
            raise PlaceError(f"place {self.choice.name}: {e}") from None
        except BaseException:
            self.stop()
            raise
        return self.port

    def _acquire(self) -> None:
        if self.board.run_kind == "micropython":
            raise PlaceError(f"board {self.board.name} runs MicroPython: semhil deploys its module with mpremote on a local "
                             "serial port, not yet through a labgrid place; run it on the computer it hangs on (--probe SERIAL)")
        self.coordinator = Coordinator(self.address)
        place = self.coordinator.place(self.choice.name)
        board_of_place(place, self.board.name)
        classes = sorted({cls for _, cls in self.coordinator.resources(place)})
        if not classes and place.matches:
            raise PlaceError(f"none of place {place.name}'s resources is online (it matches {', '.join(map(str, place.matches))}): "
                             "is its exporter running? (labgrid-client resources lists what the exporters offer)")
        if "NetworkSerialPort" not in classes:
            raise PlaceError(f"place {place.name} has no serial port (it matches: {', '.join(classes) or 'nothing'}); add the "
                             f"exporter's port: labgrid-client -p {place.name} add-match EXPORTER/GROUP/NetworkSerialPort")
        self.coordinator.acquire(place.name)
        self.keeper = start_keeper(self.address, place.name, self.coordinator.holder)

    def _open(self) -> None:
        from labgrid import Target
        from labgrid.resource.remote import RemotePlace, RemotePlaceManager
        manager = RemotePlaceManager.get()
        manager.session, manager.loop = self.coordinator.session, self.coordinator.session.loop
        self.target = Target(self.choice.name)
        RemotePlace(self.target, name=self.choice.name)
        port = self.target.get_resource("NetworkSerialPort", wait_avail=False)
        deadline = time.monotonic() + SERIAL_WAIT_S
        while not (port.port and port.avail):
            if time.monotonic() > deadline:
                raise PlaceError(f"the exporter of place {self.choice.name} did not serve its serial port within "
                                 f"{SERIAL_WAIT_S:g} s (is ser2net installed there, and the port {port.extra.get('path', '')} present?)")
            manager.poll()
        self.port = serial_url(port)
        self.debugger, self.power = place_drivers(self.target, self.board, self.firmware)
        if self.debugger:
            self.target.activate(self.debugger)
            self._labgrid("flashing", lambda: self.debugger.load(str(self.firmware)))
        if self.power:
            self.target.activate(self.power)
        if self.debugger or self.power:
            self.restart = self._reset

    def _labgrid(self, what: str, action) -> None:
        try:
            action()
        except Exception as e:  # labgrid's drivers raise their own errors (ExecutionError, ...)
            raise PlaceError(f"{what} {self.board.name} in place {self.choice.name} failed: {e}") from None

    def _reset(self) -> str:
        if self.debugger:
            self._labgrid("resetting", lambda: self.debugger.execute(["init", "reset run", "shutdown"]))
        else:
            self._labgrid("power-cycling", self.power.cycle)
        return self.port

    def stop(self) -> None:
        if self.target is not None:
            self.target.cleanup()
            self.target = None
        if self.keeper is not None:
            try:
                self.coordinator.release(self.choice.name)
                stop_keeper(self.keeper)
            except PlaceError:
                self.keeper.stdin.close()  # told nothing, the keeper releases the place
            self.keeper = None
        if self.coordinator is not None:
            self.coordinator.close()
            self.coordinator = None
        self.port = None
        self.debugger = self.power = None

    def __enter__(self) -> "PlaceBoard":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

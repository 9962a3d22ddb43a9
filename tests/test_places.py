"""semhil.places without a coordinator: which board a place holds, its serial port's URL, and the
OpenOCD driver that flashes a silicon board of a place (labgrid's own driver, on labgrid's resources)."""
import pytest
from labgrid import Target
from labgrid.remote.common import Place
from labgrid.factory import target_factory
from labgrid.resource import NetworkPowerPort, NetworkSerialPort
from labgrid.resource.remote import NetworkUSBDebugger

from semhil.boards import load_board
from semhil.places.board import DEBUGGERS, POWER_DRIVERS, board_of_place, openocd_driver, place_drivers, serial_url
from semhil.places.coordinator import PlaceError, coordinator_address


def test_the_board_a_place_holds_comes_from_its_tag_and_must_agree():
    tagged, untagged = Place("rig-1", tags={"board": "nucleo-f446re"}), Place("rig-2")
    assert board_of_place(tagged, None) == board_of_place(tagged, "nucleo-f446re") == "nucleo-f446re"
    assert board_of_place(untagged, "native") == "native"
    with pytest.raises(PlaceError, match=r"place rig-1 holds a nucleo-f446re \(its tag board=nucleo-f446re\), not a native"):
        board_of_place(tagged, "native")
    with pytest.raises(PlaceError, match="labgrid-client -p rig-2 set-tags board=NAME"):
        board_of_place(untagged, None)


def test_the_coordinator_comes_from_the_option_then_lg_coordinator(monkeypatch):
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    assert coordinator_address(None) == "127.0.0.1:20408"
    monkeypatch.setenv("LG_COORDINATOR", "lab:1234")
    assert coordinator_address(None) == "lab:1234" and coordinator_address("other:1") == "other:1"


def test_serial_urls_of_network_serial_ports():
    target = Target("rig")
    rfc2217 = NetworkSerialPort(target, "rfc", host="127.0.0.1", port=4001, speed=115200)
    raw = NetworkSerialPort(target, "raw", host="127.0.0.1", port=4002, speed=115200, protocol="raw")
    assert serial_url(rfc2217) == "rfc2217://127.0.0.1:4001?ign_set_control"
    assert serial_url(raw) == "socket://127.0.0.1:4002"


def test_a_silicon_board_is_flashed_with_labgrids_openocd_driver_on_the_places_debugger(tmp_path):
    target = Target("rig-f446-1")
    NetworkUSBDebugger(target, None, host="rig1", busnum=1, devnum=4, path="1-1.2", vendor_id=0x0483, model_id=0x374B)
    driver = openocd_driver(target, load_board("nucleo-f446re"), tmp_path)
    assert driver.interface_config == "stlink.cfg" and driver.interface.path == "1-1.2"
    assert driver.config == [str(tmp_path / "openocd-stm32f4x.cfg")]
    assert (tmp_path / "openocd-stm32f4x.cfg").read_text() == "source [find target/stm32f4x.cfg]\n"
    assert [c.format(filename="/x/firmware.elf") for c in driver.load_commands] == [
        "init", "program /x/firmware.elf verify", "reset run", "shutdown"]


def debugger_of(target):
    return NetworkUSBDebugger(target, None, host="rig1", busnum=1, devnum=4, path="1-1.2", vendor_id=0x0483, model_id=0x374B)


def test_a_place_flashes_and_resets_through_its_debugger_else_cycles_its_power(tmp_path):
    nucleo, native = load_board("nucleo-f446re"), load_board("native")
    firmware = tmp_path / "firmware.elf"
    both = Target("both")
    debugger_of(both)
    NetworkPowerPort(both, None, model="gude", host="pdu1", index="3")
    debugger, power = place_drivers(both, nucleo, firmware)
    assert type(debugger).__name__ == "OpenOCDDriver" and power is None
    debugger, power = place_drivers(both, native, firmware)  # nothing to flash on an emulated board: power resets it
    assert debugger is None and type(power).__name__ == "NetworkPowerDriver"
    bare = Target("bare")
    debugger_of(bare)
    assert place_drivers(bare, nucleo, None) == (None, None)  # no firmware to flash, no power port: no reset from here


def test_every_resource_and_driver_named_is_labgrids():
    assert set(DEBUGGERS) | set(POWER_DRIVERS) <= set(target_factory.resources)
    assert set(POWER_DRIVERS.values()) <= set(target_factory.drivers)

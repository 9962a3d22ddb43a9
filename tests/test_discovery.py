"""Finding boards on USB without hardware: fake serial ports, the hardware map, ports that move."""
import re

import pytest
from click.testing import CliRunner
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from semhil import cli_boards  # noqa: F401 - registers boards and flash
from semhil.boards import load_board
from semhil.cli import cli, console
from semhil.discovery import (HardwareMapEntry, Probe, ProbeChoice, choose_probe, detect_probes, entry_for_board,
                              hardware_map_entries, how_to_reach, port_for_serial, read_hardware_map, write_hardware_map)
from semhil.errors import SemhilError
from semhil.places.board import PlaceChoice

V21_SERIAL = "0671FF485051717867084150"
V3_SERIAL = "003A00283132511238363431"


def fake_port(device, vid, pid, serial_number, product="STM32 STLink"):
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number, info.product = vid, pid, serial_number, product
    return info


def attach(monkeypatch, *ports):
    monkeypatch.setattr(list_ports, "comports", lambda *args, **kwargs: list(ports))


BENCH = [
    fake_port("/dev/ttyACM1", 0x0483, 0x374E, V3_SERIAL, "STLINK-V3"),
    fake_port("/dev/ttyACM0", 0x0483, 0x374B, V21_SERIAL),
    fake_port("/dev/ttyUSB0", 0x0403, 0x6001, "A50285BI", "FT232R USB UART"),    # not a probe
    fake_port("/dev/ttyACM2", 0x0483, 0x5740, "2061377B5748", "STM32 Virtual ComPort"),  # an STM32's own USB CDC
]


def test_detect_lists_stlink_ports_with_their_boards(monkeypatch):
    attach(monkeypatch, *BENCH)
    assert detect_probes() == [
        Probe("/dev/ttyACM0", 0x0483, 0x374B, V21_SERIAL, "STM32 STLink", ("nucleo-f446re", "nucleo-h743zi", "stm32f746g-disco")),
        Probe("/dev/ttyACM1", 0x0483, 0x374E, V3_SERIAL, "STLINK-V3", ("stm32h750b-dk",)),
    ]
    assert detect_probes()[0].usb_id == "0483:374b"


def test_detect_accepts_a_pid_a_board_file_declares(monkeypatch):
    from dataclasses import replace
    custom = replace(load_board("nucleo-f446re"), name="custom-probe", usb_vid=0x1209, usb_pid=0x0001)
    attach(monkeypatch, fake_port("/dev/ttyACM5", 0x1209, 0x0001, "C0FFEE", "my probe"), *BENCH)
    probes = detect_probes([custom])
    assert [(p.port, p.serial_number, p.boards) for p in probes] == [
        ("/dev/ttyACM0", V21_SERIAL, ()), ("/dev/ttyACM1", V3_SERIAL, ()), ("/dev/ttyACM5", "C0FFEE", ("custom-probe",))]


def test_hardware_map_round_trip(tmp_path):
    entries = [HardwareMapEntry("nucleo-f446re", V21_SERIAL, "/dev/ttyACM0", "st-flash", "dtr"),
               HardwareMapEntry("stm32h750b-dk", V3_SERIAL, "/dev/ttyACM1"),
               HardwareMapEntry("nucleo-h743zi", 'odd"serial\\', None, "pyocd"),
               HardwareMapEntry("qemu-stm32f405"),
               HardwareMapEntry("stm32f746g-disco", port="rfc2217://rig2:2217")]
    path = tmp_path / "hardware-map.toml"
    write_hardware_map(path, entries)
    assert path.read_text().count("[[board]]") == 5
    assert read_hardware_map(path) == entries
    assert entry_for_board(entries, "stm32h750b-dk", path).probe_serial == V3_SERIAL
    with pytest.raises(SemhilError, match="has no board 'native'; it lists: nucleo-f446re, stm32h750b-dk, nucleo-h743zi, qemu-stm32f405"):
        entry_for_board(entries, "native", path)


@pytest.mark.parametrize("text,message", [
    ('[[board]]\nname = "nucleo-f446re"\nprobe_serail = "0671"\n', r"\[\[board\]\] 1: unknown key 'probe_serail' \(did you mean 'probe_serial'\?\)"),
    ('[[board]]\nname = "nucleo-f446"\nprobe_serial = "0671"\n', r"'name' = 'nucleo-f446' is not a board file \(did you mean 'nucleo-f446re'\?\)"),
    ('[[board]]\nname = "nucleo-f446re"\n', r"\[\[board\]\] 1: board nucleo-f446re is silicon: give 'probe_serial' .*, 'port' .* or 'labgrid_place'"),
    ('[[board]]\nname = "qemu-stm32f405"\nprobe_serial = "0671"\n', r"board qemu-stm32f405 is emulated .* drop 'probe_serial'"),
    ('[[board]]\nname = "nucleo-f446re"\nprobe_serial = "0671"\ntool = "stflash"\n', r"'tool' = 'stflash' is not one of: openocd, pyocd, st-flash"),
    ('[[board]]\nname = "nucleo-f446re"\nprobe_serial = "0671"\n[[board]]\nname = "nucleo-h743zi"\nprobe_serial = "0671"\n',
     r"\[\[board\]\] 2: probe_serial 0671 appears twice"),
    ('[[boards]]\nname = "nucleo-f446re"\n', r"unknown key\(s\) boards"),
    ('[[board]]\nname = "nucleo-f446re"\nprobe_serial = "0671"\nreset = "dts"\n', r"'reset' = 'dts' is not one of: probe, dtr, rts"),
    ('[[board]\nname = "x"\n', "not valid TOML"),
])
def test_hardware_map_mistakes_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    with pytest.raises(SemhilError, match=rf"{path}.*{message}"):
        read_hardware_map(path)


def test_port_is_found_by_serial_after_it_moves(monkeypatch):
    attach(monkeypatch, *BENCH)
    assert port_for_serial(V21_SERIAL) == "/dev/ttyACM0"
    attach(monkeypatch, fake_port("/dev/ttyACM3", 0x0483, 0x374B, V21_SERIAL))  # unplugged and plugged in again
    assert port_for_serial(V21_SERIAL.lower()) == "/dev/ttyACM3"


def test_missing_probe_lists_what_is_attached(monkeypatch):
    attach(monkeypatch, *BENCH)
    with pytest.raises(SemhilError, match=rf"no serial port belongs to the probe with serial DEADBEEF; attached: "
                                          rf"/dev/ttyACM0 \(0483:374b, serial {V21_SERIAL}, nucleo-f446re/nucleo-h743zi/stm32f746g-disco\); "
                                          rf"/dev/ttyACM1 \(0483:374e, serial {V3_SERIAL}, stm32h750b-dk\)"):
        port_for_serial("DEADBEEF")
    attach(monkeypatch)
    with pytest.raises(SemhilError, match="no ST-LINK is attached"):
        port_for_serial("DEADBEEF", wait_s=0.3)


def test_boards_lists_every_board_file(monkeypatch):
    monkeypatch.setattr(console, "width", 200)  # every column whole
    done = CliRunner().invoke(cli, ["boards"])
    assert done.exit_code == 0, done.output
    lines = {line.split()[0]: line.split() for line in done.output.splitlines() if line.strip()}
    assert lines["nucleo-f446re"] == ["nucleo-f446re", "stm32f4", "cortex-m4", "180", "512", "128", "probe", "cycles"]
    assert lines["native"] == ["native", "native", "native", "-", "-", "-", "native", "ns"]
    assert lines["micropython-unix"] == ["micropython-unix", "micropython", "native", "-", "-", "-", "micropython", "us"]
    assert {"qemu-stm32f405", "qemu-cortex-m7", "stm32h750b-dk", "stm32f746g-disco", "nucleo-h743zi"} <= set(lines)


def test_boards_detect_and_generate_hardware_map(monkeypatch, tmp_path):
    attach(monkeypatch, *BENCH)
    done = CliRunner().invoke(cli, ["boards", "--detect"])
    assert done.exit_code == 0, done.output
    assert V21_SERIAL in done.output and V3_SERIAL in done.output and "ttyUSB0" not in done.output

    path = tmp_path / "hardware-map.toml"
    done = CliRunner().invoke(cli, ["boards", "--generate-hardware-map", str(path)])
    assert done.exit_code == 0, done.output
    assert "fill in the board name of 1 of them" in done.output
    text = path.read_text()
    assert "# fill in name: the board on this probe (STM32 STLink); candidates: nucleo-f446re, nucleo-h743zi, stm32f746g-disco" in text
    with pytest.raises(SemhilError, match=rf"\[\[board\]\] 1 \(probe {V21_SERIAL}\): 'name' is empty; fill in the board"):
        read_hardware_map(path)
    path.write_text(text.replace('name = ""', 'name = "nucleo-f446re"'))
    assert read_hardware_map(path) == [HardwareMapEntry("nucleo-f446re", V21_SERIAL, "/dev/ttyACM0"),
                                       HardwareMapEntry("stm32h750b-dk", V3_SERIAL, "/dev/ttyACM1")]


def test_generated_entries_name_the_board_only_when_one_matches():
    probes = [Probe("/dev/ttyACM9", 0x1209, 0x0001, "C0FFEE", "my probe", ())]
    [entry] = hardware_map_entries(probes)
    assert entry.name == "" and "none of the board files matches 1209:0001" in entry.comment


def test_choose_probe_from_the_command_line_or_a_hardware_map(tmp_path):
    nucleo, native = load_board("nucleo-f446re"), load_board("native")
    assert choose_probe(nucleo, V21_SERIAL, None, "pyocd") == ProbeChoice(V21_SERIAL, "pyocd")
    path = tmp_path / "rig.toml"
    write_hardware_map(path, [HardwareMapEntry("nucleo-f446re", V21_SERIAL, tool="st-flash", reset="rts")])
    assert choose_probe(nucleo, None, path, None) == ProbeChoice(V21_SERIAL, "st-flash", "rts")
    assert choose_probe(native, None, None, None) is None
    with pytest.raises(SemhilError, match="name it with --probe SERIAL or --hardware-map FILE"):
        choose_probe(nucleo, None, None, None)
    with pytest.raises(SemhilError, match="not both"):
        choose_probe(nucleo, V21_SERIAL, path, None)
    with pytest.raises(SemhilError, match="board native is not on a probe"):
        choose_probe(native, V21_SERIAL, None, None)
    write_hardware_map(path, [HardwareMapEntry("nucleo-f446re", port="rfc2217://rig2:2217")])
    with pytest.raises(SemhilError, match="without a probe, at rfc2217://rig2:2217: run it with --port rfc2217://rig2:2217"):
        choose_probe(nucleo, None, path, None)


def test_how_to_reach_each_board_of_a_rig(tmp_path):
    nucleo, h7, f405, native = map(load_board, ("nucleo-f446re", "nucleo-h743zi", "qemu-stm32f405", "native"))
    path = tmp_path / "rig.toml"
    write_hardware_map(path, [HardwareMapEntry("nucleo-f446re", V21_SERIAL, tool="pyocd"),
                              HardwareMapEntry("nucleo-h743zi", port="rfc2217://rig2:2217"),
                              HardwareMapEntry("qemu-stm32f405", port="socket://rig3:4000"), HardwareMapEntry("native")])
    assert how_to_reach(nucleo, path) == (ProbeChoice(V21_SERIAL, "pyocd"), None, None)
    assert how_to_reach(h7, path) == (None, "rfc2217://rig2:2217", None)
    assert how_to_reach(f405, path) == (None, "socket://rig3:4000", None)
    assert how_to_reach(native, path) == (None, None, None) == how_to_reach(native, None)
    with pytest.raises(SemhilError, match="name it with --probe SERIAL or --hardware-map FILE"):
        how_to_reach(nucleo, None)


def test_boards_in_labgrid_places_in_a_hardware_map(tmp_path):
    nucleo, native = load_board("nucleo-f446re"), load_board("native")
    path = tmp_path / "rig.toml"
    entries = [HardwareMapEntry("nucleo-f446re", labgrid_place="rig-f446-1", labgrid_coordinator="lab:20408"),
               HardwareMapEntry("native", labgrid_place="desk-native")]
    write_hardware_map(path, entries)
    assert read_hardware_map(path) == entries
    assert how_to_reach(nucleo, path) == (None, None, PlaceChoice("rig-f446-1", "lab:20408"))
    assert how_to_reach(native, path) == (None, None, PlaceChoice("desk-native", None))
    with pytest.raises(SemhilError, match="in labgrid place rig-f446-1: a run flashes it while holding the place"):
        choose_probe(nucleo, None, path, None)


@pytest.mark.parametrize("table, said", [
    ('name = "nucleo-f446re"\nlabgrid_place = "p"\nprobe_serial = "X"', "is in labgrid place 'p', which flashes, resets and serves it: drop probe_serial"),
    ('name = "native"\nlabgrid_place = "p"\nport = "rfc2217://a:1"', "drop port"),
    ('name = "native"\nlabgrid_coordinator = "a:1"', "'labgrid_coordinator' without 'labgrid_place'"),
    ('name = "native"\nlabgrid_plce = "p"', "unknown key 'labgrid_plce' (did you mean 'labgrid_place'?)"),
])
def test_a_place_entry_with_other_ways_to_reach_the_board_is_refused(tmp_path, table, said):
    path = tmp_path / "rig.toml"
    path.write_text(f"[[board]]\n{table}\n")
    with pytest.raises(SemhilError, match=re.escape(said)):
        read_hardware_map(path)

"""MicroPython boards: their board files, the device half built as a native module for each
architecture, and `semhil flash --dry-run` for the silicon ones (the module and program go on with
mpremote). The module running on MicroPython is tested by the HIL suite (hil_tests/, boards
micropython-unix and micropython-qemu-m7)."""
import os
import shlex
import subprocess
import sys
import time

import pytest

from semhil.boards import load_board, load_board_file
from semhil.errors import SemhilError
from semhil.micropython.deploy import read_module

needs_micropython = pytest.mark.skipif(not os.environ.get("MICROPY_HOME"),
                                       reason="needs MICROPY_HOME (a MicroPython checkout: make micropython)")
BOARDS = {"micropython-unix": "x64", "micropython-qemu-m7": "armv7emdp", "pyboard-v11": "armv7emsp", "openmv-h7": "armv7emdp"}
QEMU_BOARD = load_board("micropython-qemu-m7").path.read_text()


@pytest.mark.parametrize("name,arch", BOARDS.items())
def test_micropython_board_files_name_their_module_architecture(name, arch):
    board = load_board(name)
    assert board.run_kind == "micropython" and board.micropython_arch == arch
    assert board.latency_unit == {"micropython-unix": "us", "micropython-qemu-m7": "instructions"}.get(name, "cycles")


@pytest.mark.parametrize("change,message", [
    (('arch = "armv7emdp"', 'arch = "armv7em"'), "'micropython.arch' = 'armv7em' is not one of: x64, armv7emsp, armv7emdp"),
    (('board = "MPS2_AN500"\n', ''), "'micropython.board' (e.g. 'MPS2_AN500') goes with micropython.port = 'qemu'"),
    (('source = "icount"', 'source = "cycles"'), "'latency.source' must be 'icount' for a MicroPython board with micropython.port = 'qemu'"),
    (('[micropython]\narch = "armv7emdp"', '[extra]\narch = "armv7emdp"'), "unknown key 'extra'"),
    (('family = "micropython"', 'family = "mps2"'), "'uart.instance' = 'repl' is not one of: UART0"),
])
def test_a_wrong_micropython_board_file_says_what_is_wrong(tmp_path, change, message):
    path = tmp_path / "micropython-qemu-m7.toml"
    path.write_text(QEMU_BOARD.replace(*change))
    with pytest.raises(SemhilError) as wrong:
        load_board_file(path)
    assert message in str(wrong.value) and str(path) in str(wrong.value)


def test_a_silicon_micropython_board_needs_its_usb_ids(tmp_path):
    path = tmp_path / "pyboard.toml"
    path.write_text(load_board("pyboard-v11").path.read_text().replace("[usb]\nvid = 0xf055", "[usbx]\nvid = 0xf055")
                    .replace("pid = 0x9800", ""))
    with pytest.raises(SemhilError, match="unknown key 'usbx'"):
        load_board_file(path)
    path.write_text("\n".join(line for line in load_board("pyboard-v11").path.read_text().splitlines()
                              if not line.startswith(("[usb]", "vid", "pid"))))
    with pytest.raises(SemhilError, match=r"missing table \[usb\] \(vid, pid of the board's USB serial\)"):
        load_board_file(path)


@needs_micropython
@pytest.mark.parametrize("name", BOARDS)
def test_the_module_is_built_for_the_boards_architecture(bundle, name):
    from semhil.build import build_firmware
    home = os.environ["MICROPY_HOME"]
    marker = bundle.path / f"before-{name}"
    marker.write_text("")
    time.sleep(0.01)
    firmware = build_firmware(bundle, load_board(name))
    module = read_module(firmware.path)
    assert firmware.path.name == "semhil_model.mpy" and firmware.path.parent.name == f"{name}-standalone"
    assert module.arch == BOARDS[name] and module.size == firmware.memory.flash_bytes > 4000
    assert bundle.hash.encode() in firmware.path.read_bytes()  # the module says which bundle it is
    assert 0 < firmware.memory.ram_static_bytes and firmware.memory.stack_region_bytes == (load_board(name).stack_bytes or 8192)
    written = subprocess.run(["find", home, "-newer", str(marker)], capture_output=True, text=True).stdout
    assert written == "", f"the build wrote inside MICROPY_HOME: {written[:300]}"


def test_another_backend_is_refused_for_a_micropython_board(bundle):
    from semhil.build import build_firmware
    with pytest.raises(SemhilError, match="built from the standalone backend only, not nnom: use --backend standalone"):
        build_firmware(bundle, load_board("micropython-unix"), "nnom")


def _semhil(*args):
    return subprocess.run([sys.executable, "-c", "from semhil.cli import main; main()", *args], capture_output=True, text=True)


@needs_micropython
def test_flash_dry_run_shows_the_mpremote_commands_for_a_pyboard(bundle):
    done = _semhil("flash", str(bundle.path), "--board", "pyboard-v11", "--probe", "3276345A3333", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    probe, load = map(shlex.split, done.stdout.strip().splitlines())
    module = bundle.path.resolve() / "build" / "pyboard-v11-standalone" / "semhil_model.mpy"
    assert probe[1:6] == ["-m", "mpremote", "connect", "id:3276345A3333", "exec"] and "SEMHIL-FACTS" in probe[6]
    assert load[3:6] == ["connect", "id:3276345A3333", "run"] and ["cp", str(module), ":/ram/semhil_model.mpy"] == load[7:10]
    assert load[-3:-1] == ["exec", "--no-follow"] and load[-1].endswith("semhil_dut.main('pyboard-v11', 'cpu')")
    assert read_module(module).arch == "armv7emsp"


def test_flash_of_a_micropython_board_needs_its_usb_serial_number(bundle):
    done = _semhil("flash", str(bundle.path), "--board", "openmv-h7", "--dry-run")
    assert done.returncode != 0
    assert "openmv-h7: name it by the USB serial number of its MicroPython (--probe SERIAL" in done.stdout + done.stderr

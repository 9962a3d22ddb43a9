"""Flashing through a probe without hardware: the exact command lines, clear errors, stand-in tools on PATH."""
import os
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from semhil import cli_boards  # noqa: F401 - registers boards and flash
from semhil.boards import load_board
from semhil.cli import cli
from semhil.errors import SemhilError
from semhil.flash import ProbeBoard, flash, flash_command, flash_steps, reset_command, reset_through_serial_lines

SERIAL = "0671FF485051717867084150"
ELF = Path("/work/bundle/build/nucleo-f446re-standalone/firmware.elf")
BIN = "/work/bundle/build/nucleo-f446re-standalone/firmware.bin"


@pytest.fixture(scope="module")
def nucleo():
    return load_board("nucleo-f446re")


def test_openocd_command_line(nucleo):
    assert flash_command(nucleo, ELF) == [
        "openocd", "-f", "interface/stlink.cfg", "-f", "target/stm32f4x.cfg", "-c", f"program {ELF} verify reset exit"]
    assert flash_command(nucleo, ELF, "openocd", SERIAL) == [
        "openocd", "-f", "interface/stlink.cfg", "-c", f"adapter serial {SERIAL}", "-f", "target/stm32f4x.cfg",
        "-c", f"program {ELF} verify reset exit"]
    assert reset_command(nucleo, "openocd", SERIAL) == [
        "openocd", "-f", "interface/stlink.cfg", "-c", f"adapter serial {SERIAL}", "-f", "target/stm32f4x.cfg",
        "-c", "init; reset run; exit"]
    spaced = Path("/work/my bundle/firmware.elf")
    assert flash_command(nucleo, spaced)[-1] == "program {/work/my bundle/firmware.elf} verify reset exit"


def test_pyocd_command_line(nucleo):
    assert flash_command(nucleo, ELF, "pyocd") == ["pyocd", "flash", "-t", "stm32f446retx", str(ELF)]
    assert flash_command(nucleo, ELF, "pyocd", SERIAL) == ["pyocd", "flash", "-t", "stm32f446retx", "-u", SERIAL, str(ELF)]
    assert reset_command(nucleo, "pyocd") == ["pyocd", "reset", "-t", "stm32f446retx"]
    assert reset_command(nucleo, "pyocd", SERIAL) == ["pyocd", "reset", "-t", "stm32f446retx", "-u", SERIAL]


def test_st_flash_command_line_writes_a_bin_made_next_to_the_elf(nucleo):
    assert flash_steps(nucleo, ELF, "st-flash") == [
        ["arm-none-eabi-objcopy", "-O", "binary", str(ELF), BIN],
        ["st-flash", "--reset", "write", BIN, "0x08000000"]]
    assert flash_command(nucleo, ELF, "st-flash", SERIAL) == ["st-flash", "--serial", SERIAL, "--reset", "write", BIN, "0x08000000"]
    assert reset_command(nucleo, "st-flash") == ["st-flash", "reset"]
    assert reset_command(nucleo, "st-flash", SERIAL) == ["st-flash", "--serial", SERIAL, "reset"]


def test_st_flash_address_is_the_boards_flash_origin(nucleo):
    at_zero = replace(nucleo, family="mps2")  # a family whose flash starts at 0
    assert flash_command(at_zero, ELF, "st-flash")[-1] == "0x00000000"
    assert flash_command(load_board("stm32h750b-dk"), ELF, "st-flash")[-1] == "0x08000000"
    assert flash_command(load_board("stm32h750b-dk"), ELF, "openocd")[4] == "target/stm32h7x.cfg"


@pytest.mark.parametrize("name,kind", [("native", "native"), ("qemu-stm32f405", "qemu"), ("qemu-cortex-m7", "qemu")])
def test_boards_without_a_probe_are_not_flashed(name, kind):
    board = load_board(name)
    message = rf"board {name} is a {kind} board and is not flashed.*nucleo-f446re, nucleo-h743zi, stm32f746g-disco, stm32h750b-dk"
    for call in (lambda: flash_command(board, ELF), lambda: reset_command(board), lambda: ProbeBoard(board, ELF, SERIAL)):
        with pytest.raises(SemhilError, match=message):
            call()


def fake_tool(bin_dir: Path, name: str, script: str) -> Path:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("tool,install", [("openocd", "apt-get install openocd"), ("pyocd", "pip install pyocd"),
                                          ("st-flash", "apt-get install stlink-tools")])
def test_missing_tool_says_how_to_install_it(nucleo, tool, install, monkeypatch, tmp_path):
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    fake_tool(tmp_path / "bin", "arm-none-eabi-objcopy", "exit 0\n")  # so st-flash is what is missing
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(SemhilError, match=rf"^{tool} not found \(needed for flashing nucleo-f446re\): install it with `{install}"):
        flash(nucleo, elf, tool)


def test_missing_objcopy_says_how_to_install_it(nucleo, monkeypatch, tmp_path):
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SemhilError, match="arm-none-eabi-objcopy not found.*apt-get install binutils-arm-none-eabi"):
        flash(nucleo, elf, "st-flash")


def test_failing_tool_reports_the_tail_of_its_output(nucleo, monkeypatch, tmp_path):
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    fake_tool(tmp_path / "bin", "openocd", 'for i in $(seq 1 20); do echo "Info : line $i"; done\n'
                                           'echo "Error: open failed" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(SemhilError) as caught:
        flash(nucleo, elf, "openocd", SERIAL)
    message = str(caught.value)
    assert message.startswith(f"flashing nucleo-f446re failed: `openocd -f interface/stlink.cfg -c 'adapter serial {SERIAL}'")
    assert "exited with 1" in message and "Info : line 20 | Error: open failed" in message
    assert "line 13 " not in message  # only the tail
    assert "semhil boards --detect" in message


def test_dry_run_runs_nothing_and_a_missing_firmware_is_named(nucleo, tmp_path):
    assert flash(nucleo, tmp_path / "none.elf", "openocd", dry_run=True)[0][0] == "openocd"
    with pytest.raises(SemhilError, match=r"firmware .*none.elf does not exist; build it with `semhil build"):
        flash(nucleo, tmp_path / "none.elf", "openocd")


def test_probe_board_flashes_finds_its_port_by_serial_and_resets(nucleo, monkeypatch, tmp_path):
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    log = tmp_path / "openocd.log"
    fake_tool(tmp_path / "bin", "openocd", f'echo "$@" >> {log}\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")

    def attach(device):
        info = ListPortInfo(device, skip_link_detection=True)
        info.vid, info.pid, info.serial_number = 0x0483, 0x374B, SERIAL
        monkeypatch.setattr(list_ports, "comports", lambda *args, **kwargs: [info])

    attach("/dev/ttyACM3")
    with ProbeBoard(nucleo, elf, SERIAL) as board:
        assert board.port == "/dev/ttyACM3"
        attach("/dev/ttyACM7")  # the board came back on another port
        assert board.restart() == "/dev/ttyACM7"
    assert board.port is None
    assert log.read_text().splitlines() == [
        f"-f interface/stlink.cfg -c adapter serial {SERIAL} -f target/stm32f4x.cfg -c program {elf} verify reset exit",
        f"-f interface/stlink.cfg -c adapter serial {SERIAL} -f target/stm32f4x.cfg -c init; reset run; exit"]
    assert ProbeBoard(nucleo, elf, SERIAL, already_flashed=True).start() == "/dev/ttyACM7"
    assert len(log.read_text().splitlines()) == 2  # not flashed again


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """An untrained codec written as a bundle: enough to build a real firmware."""
    from codec_train.data import load_dataset
    from codec_train.train import TrainConfig, build_models, write_bundle
    torch.manual_seed(0)
    task, codec = build_models(TrainConfig(), (28, 28, 1), 10)
    return write_bundle(tmp_path_factory.mktemp("flash") / "bundle", TrainConfig(), load_dataset("mnist5k"), task.eval(), codec.eval(), {})


def test_flash_dry_run_builds_and_prints_the_command(bundle, tmp_path):
    done = CliRunner().invoke(cli, ["flash", str(bundle.path), "--board", "nucleo-f446re", "--probe", SERIAL, "--dry-run"])
    assert done.exit_code == 0, done.output + repr(done.exception)
    elf = bundle.path.resolve() / "build" / "nucleo-f446re-standalone" / "firmware.elf"
    assert elf.stat().st_size > 0
    assert done.output.splitlines()[-1] == (f"openocd -f interface/stlink.cfg -c 'adapter serial {SERIAL}' -f target/stm32f4x.cfg "
                                            f"-c 'program {elf} verify reset exit'")

    hardware_map = tmp_path / "bench.toml"
    hardware_map.write_text(f'[[board]]\nname = "nucleo-f446re"\nprobe_serial = "{SERIAL}"\ntool = "st-flash"\n')
    done = CliRunner().invoke(cli, ["flash", str(bundle.path), "--board", "nucleo-f446re", "--hardware-map", str(hardware_map), "--dry-run"])
    assert done.exit_code == 0, done.output + repr(done.exception)
    assert done.output.splitlines()[-2:] == [shlex.join(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(elf.with_suffix(".bin"))]),
                                             f"st-flash --serial {SERIAL} --reset write {elf.with_suffix('.bin')} 0x08000000"]


def test_flash_with_st_flash_makes_the_bin_and_runs_the_tool(bundle, monkeypatch, tmp_path):
    from semhil.build import build_firmware
    elf = build_firmware(bundle, load_board("nucleo-f446re")).path
    log = tmp_path / "st-flash.log"
    fake_tool(tmp_path / "bin", "st-flash", f'echo "$@" >> {log}\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    flash(load_board("nucleo-f446re"), elf, "st-flash", SERIAL)
    binary = elf.with_suffix(".bin")
    assert 1024 < binary.stat().st_size < elf.stat().st_size
    assert log.read_text().split() == ["--serial", SERIAL, "--reset", "write", str(binary), "0x08000000"]


def test_flash_refuses_a_qemu_board_before_building(tmp_path):
    done = CliRunner().invoke(cli, ["flash", str(tmp_path / "nowhere"), "--board", "qemu-stm32f405", "--dry-run"])
    assert isinstance(done.exception, SemhilError) and "is a qemu board and is not flashed" in str(done.exception)


def test_reset_through_a_port_without_modem_lines_is_a_clear_error():
    controller, device = os.openpty()  # a real pseudo-terminal: it has no DTR or RTS
    try:
        with pytest.raises(SemhilError, match=r"has no DTR line to reset the board through .* reset through the probe"):
            reset_through_serial_lines(os.ttyname(device), "dtr")
    finally:
        os.close(controller)
        os.close(device)

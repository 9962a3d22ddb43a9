"""Bad input on the command line: one clear line, non-zero exit, no traceback."""
import subprocess
import sys

import pytest

from semhil.dut import Dut
from semhil.errors import SemhilError


def semhil(*args):
    return subprocess.run([sys.executable, "-c", "from semhil.cli import main; main()", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args,message", [
    (["demo", "--board", "qemu-stm32f45"], "did you mean 'qemu-stm32f405'"),
    (["run", "/nonexistent/bundle", "--board", "native"], "is not a bundle"),
    (["run", "/nonexistent/bundle", "--board", "native", "--ber", "0,x"], "--ber"),
    (["build", "/nonexistent/bundle", "--board", "nosuchboard"], "unknown board 'nosuchboard'"),
    (["table", __file__], "is not a results JSON"),
    (["run", "/nonexistent/bundle", "--place", "rig-1", "--port", "rfc2217://a:1"], "give one way to reach the board: --port, --probe/--hardware-map, or --place"),
    (["sweep", "/nonexistent/bundle", "--place", "rig-1", "--coordinator", "127.0.0.1:1", "--out", "/tmp/x"],
     "the labgrid coordinator at 127.0.0.1:1 does not answer"),
])
def test_bad_input_gives_one_clear_line(args, message):
    done = semhil(*args)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_boards_lists_the_board_files():
    done = semhil("boards")
    assert done.returncode == 0 and "qemu-stm32f405" in done.stdout and "native" in done.stdout


def test_missing_serial_port_is_a_clear_error():
    with pytest.raises(SemhilError, match="cannot open serial port /dev/does-not-exist"):
        Dut("/dev/does-not-exist", "myboard").open()


def test_missing_cross_compiler_and_qemu_say_how_to_install(monkeypatch, tmp_path):
    from semhil.boards import load_board
    from semhil.build import compiler_for
    from semhil.runners import board_command
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    board = load_board("qemu-stm32f405")
    with pytest.raises(SemhilError, match="arm-none-eabi-gcc not found.*make toolchain"):
        compiler_for(board)
    with pytest.raises(SemhilError, match="qemu-system-arm not found.*apt-get install qemu-system-arm"):
        board_command(board, tmp_path / "firmware.elf")

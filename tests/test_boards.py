import pytest

from semhil.boards import board_names, load_board
from semhil.errors import SemhilError


def test_shipped_boards_load():
    assert {"native", "qemu-stm32f405"} <= set(board_names())
    board = load_board("qemu-stm32f405")
    assert board.family == "stm32f4" and board.qemu_machine == "netduinoplus2"
    assert board.latency_unit == "instructions" and board.ram_bytes == 128 * 1024
    assert load_board("native").latency_unit == "ns"


def test_misspelt_board_name_suggests_the_right_one():
    with pytest.raises(SemhilError, match=r"unknown board 'qemu-stm32f45' \(did you mean 'qemu-stm32f405'\?\)"):
        load_board("qemu-stm32f45")


def _write(tmp_path, text):
    path = tmp_path / "myboard.toml"
    path.write_text(text)
    return str(path)


GOOD = """name = "myboard"
family = "stm32f4"
core = "cortex-m4"
clock_hz = 168000000
[uart]
instance = "USART1"
baud = 115200
[run]
kind = "qemu"
machine = "netduinoplus2"
[latency]
source = "icount"
"""


def test_board_file_with_a_typo_names_file_key_and_fix(tmp_path):
    path = _write(tmp_path, GOOD.replace("clock_hz", "clok_hz"))
    with pytest.raises(SemhilError) as e:
        load_board(path)
    assert "myboard.toml" in str(e.value) and "'clok_hz'" in str(e.value) and "did you mean 'clock_hz'" in str(e.value)


@pytest.mark.parametrize("change,message", [
    (("cortex-m4", "cortex-m9"), "'core' = 'cortex-m9' is not one of"),
    (("115200", '"fast"'), "'uart.baud' must be int"),
    (('machine = "netduinoplus2"\n', ""), "'run.machine' is required"),
    (('source = "icount"', 'sorce = "icount"'), "unknown key 'latency.sorce'"),
    (("[uart]", "[uart]\nparity = 1"), "unknown key 'uart.parity'"),
])
def test_board_file_errors(tmp_path, change, message):
    with pytest.raises(SemhilError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_board(_write(tmp_path, GOOD.replace(*change)))


def test_good_board_file_loads(tmp_path):
    assert load_board(_write(tmp_path, GOOD)).clock_hz == 168_000_000

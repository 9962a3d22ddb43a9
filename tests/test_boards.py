import re

import pytest

from semhil.boards import board_names, load_board
from semhil.clocks import LIMITS, clock_plan
from semhil.errors import SemhilError


def test_shipped_boards_load():
    assert {"native", "qemu-stm32f405", "qemu-cortex-m7", "nucleo-f446re", "stm32f746g-disco", "nucleo-h743zi",
            "stm32h750b-dk"} <= set(board_names())
    for name in board_names():
        assert load_board(name).name == name
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
flash_bytes = 1048576
ram_bytes = 131072
stack_bytes = 16384
[clock]
source = "emulated"
[uart]
instance = "USART1"
tx = "PA9"
rx = "PA10"
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
    (('instance = "USART1"', 'instance = "UART0"'), "'uart.instance' = 'UART0' is not one of: USART1, USART2, USART3"),
    (('tx = "PA9"', 'tx = "A9"'), "'uart.tx' = 'A9' is not a pin name"),
    (('rx = "PA10"\n', ""), "missing key 'uart.rx'"),
    (('family = "stm32f4"', 'family = "stm32h7"'), "'core' = 'cortex-m4' is not one of: cortex-m7 (family stm32h7)"),
    (('source = "emulated"', 'source = "hse-crystal"'), "'clock.hse_hz' is required"),
    (("stack_bytes = 16384", "stack_bytes = 16383"), "'stack_bytes' = 16383 must be a multiple of 8"),
    (("ram_bytes = 131072\n", ""), "missing key 'ram_bytes'"),
    (('kind = "qemu"', 'kind = "probe"'), "missing table [flash]"),
    (('source = "icount"', 'source = "cycles"'), "'latency.source' must be 'icount' for run.kind = 'qemu'"),
])
def test_board_file_errors(tmp_path, change, message):
    with pytest.raises(SemhilError, match=re.escape(message)):
        load_board(_write(tmp_path, GOOD.replace(*change)))


def test_good_board_file_loads(tmp_path):
    board = load_board(_write(tmp_path, GOOD))
    assert board.clock_hz == 168_000_000 and board.uart_tx == "PA9" and board.memory_origins == (0x08000000, 0x20000000)


SILICON = GOOD.replace('source = "emulated"', 'source = "hse-bypass"\nhse_hz = 8000000').replace(
    'kind = "qemu"\nmachine = "netduinoplus2"',
    'kind = "probe"\n[flash]\ntool = "openocd"\nopenocd_target = "stm32f4x"\npyocd_target = "stm32f405rgtx"\n'
    '[usb]\nvid = 0x0483\npid = 0x374b').replace('source = "icount"', 'source = "cycles"')


@pytest.mark.parametrize("name", [n for n in board_names() if load_board(n).clock_source not in (None, "emulated")])
def test_clock_plan_of_every_silicon_board_meets_its_family_limits(name):
    board = load_board(name)
    plan, limits = clock_plan(board), LIMITS[board.family]
    vco_in = plan.input_hz / plan.pll_m
    assert limits.vco_in[0] <= vco_in <= limits.vco_in[1]
    assert limits.vco_out[0] <= vco_in * plan.pll_n <= limits.vco_out[1]
    assert vco_in * plan.pll_n / plan.pll_p == board.clock_hz
    assert plan.hclk_hz <= limits.hclk_max
    assert plan.hclk_hz / plan.apb1_div <= limits.apb1_max and plan.hclk_hz / plan.apb2_div <= limits.apb2_max
    assert plan.flash_latency >= 2


def test_clock_plan_of_a_nucleo_f446re():
    plan = clock_plan(load_board("nucleo-f446re"))
    assert (plan.pll_m, plan.pll_n, plan.pll_p, plan.apb1_div, plan.apb2_div) == (4, 180, 2, 4, 2)
    assert plan.flash_latency == 5 and plan.overdrive


def test_silicon_board_file_loads_and_an_unreachable_clock_is_a_clear_error(tmp_path):
    board = load_board(_write(tmp_path, SILICON))
    assert board.run_kind == "probe" and board.usb_pid == 0x374B and clock_plan(board).sysclk_hz == 168_000_000
    unreachable = load_board(_write(tmp_path, SILICON.replace("clock_hz = 168000000", "clock_hz = 167300000")))
    with pytest.raises(SemhilError, match=r"myboard.toml: clock_hz = 167300000 cannot be made from a 8 MHz hse-bypass"):
        clock_plan(unreachable)
    too_fast = load_board(_write(tmp_path, SILICON.replace("clock_hz = 168000000", "clock_hz = 200000000")))
    with pytest.raises(SemhilError, match="above the stm32f4 ceiling"):
        clock_plan(too_fast)

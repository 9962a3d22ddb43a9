"""Every board in boards/ gets a firmware: built and sized against the board's capacity. Silicon
boards stop here (no board attached in CI); the HIL suite runs the others."""
import pytest

from semhil.boards import board_names, load_board
from semhil.build import build_firmware
from semhil.clocks import clock_plan


@pytest.mark.parametrize("name", board_names())
def test_firmware_builds_and_fits_every_board(bundle, name):
    board = load_board(name)
    firmware = build_firmware(bundle, board, "standalone")
    memory = firmware.memory
    assert memory.flash_bytes > 1000 and memory.ram_static_bytes > bundle.graph["code_bytes"]
    if board.is_mcu:
        assert memory.flash_bytes <= board.flash_bytes
        assert memory.ram_static_bytes + memory.stack_region_bytes <= board.ram_bytes
        assert memory.stack_region_bytes == board.stack_bytes
        config = (firmware.path.parent / "board_config.h").read_text()
        assert f'#define BOARD_NAME "{name}"' in config and f"#define BOARD_CORE_CLOCK_HZ {board.clock_hz}u" in config
        plan = clock_plan(board)
        assert f"#define BOARD_PLL_N {plan.pll_n}" in config

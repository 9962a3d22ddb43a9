"""Every board in boards/ gets a firmware: built, checked to hold its model, and sized against the
board's capacity (peak RAM = static + the worst-case stack from GCC's call graph). Silicon boards
stop here (no board attached in CI); the HIL suite runs the others, and there the stack the
firmware measures must stay within the build's estimate."""
import json

import pytest

from codec_train.data import load_dataset
from semhil.backends import SYMBOLS_FILE
from semhil.boards import board_names, load_board
from semhil.build import build_firmware, firmware_stack
from semhil.clocks import clock_plan
from semhil.firmware_check import missing_model_symbols
from semhil.micropython.deploy import read_module
from semhil.pytest_plugin import skip_unless_available


@pytest.mark.parametrize("name", board_names())
def test_firmware_builds_and_fits_every_board(bundle, name):
    board = load_board(name)
    if board.run_kind == "micropython":
        skip_unless_available("standalone", board)
    firmware = build_firmware(bundle, board, "standalone")
    memory = firmware.memory
    if board.run_kind == "micropython":  # a native module (tests/test_micropython_module.py): its architecture and size
        assert read_module(firmware.path).arch == board.micropython_arch and memory.flash_bytes == firmware.path.stat().st_size
        assert bundle.hash.encode() in firmware.path.read_bytes() and memory.stack_region_bytes == (board.stack_bytes or 8192)
        return
    assert memory.flash_bytes > 1000 and memory.ram_static_bytes > bundle.graph["code_bytes"]
    symbols = json.loads((bundle.path / "device" / "standalone" / SYMBOLS_FILE).read_text())
    assert missing_model_symbols(firmware.path, symbols) == []
    if board.is_mcu:
        assert memory.flash_bytes <= board.flash_bytes
        assert memory.ram_static_bytes + memory.stack_region_bytes <= board.ram_bytes
        assert memory.stack_region_bytes == board.stack_bytes
        assert 0 < memory.stack_estimate_bytes <= memory.stack_region_bytes
        assert memory.peak_ram_bytes == memory.ram_static_bytes + memory.stack_estimate_bytes <= board.ram_bytes
        config = (firmware.path.parent / "board_config.h").read_text()
        assert f'#define BOARD_NAME "{name}"' in config and f"#define BOARD_CORE_CLOCK_HZ {board.clock_hz}u" in config
        plan = clock_plan(board)
        assert f"#define BOARD_PLL_N {plan.pll_n}" in config


def test_stack_estimate_covers_the_stack_the_board_measures(board, dut, bundle):
    """INFER_OK replies carry the stack the inference used (painted, from th_run_measuring_stack down,
    interrupts included): the build's estimate from that function, and from the reset handler, cover it.
    On native the port's own stack holds it, within the size INFO gives."""
    images = load_dataset(bundle.config["dataset"], bundle.config.get("image_size")).x_test[:8]
    peak = max(dut.infer(image.tobytes()).stack_peak_bytes for image in images)
    memory = board.firmware.memory
    if board.config.run_kind == "micropython":  # the module's own painted stack, of the size INFO gives
        assert 0 < peak <= int(dut.board_info["stack_bytes"]) == memory.stack_region_bytes
        return
    if not board.config.is_mcu:  # native: the inference runs on a painted stack of the port's own, no linked stack to estimate
        assert memory.stack_estimate_bytes is None and 0 < peak <= int(dut.board_info["stack_bytes"])
        return
    inference = firmware_stack(board.firmware, "th_run_measuring_stack").bytes
    assert 0 < peak <= inference, (peak, inference)
    if memory.stack_estimate_bytes is None:  # NNoM compiles its layer graph recursively at start-up
        assert any("the stack is unbounded: recursion" in note for note in memory.notes)
    else:
        assert inference <= memory.stack_estimate_bytes, memory.stack_path

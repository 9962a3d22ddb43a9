"""A ResNet-50-stem codec at 32x32 (conv 7x7/2 with folded BatchNorm, ReLU, max-pool 3x3/2, then the
encoder) on every board and backend: every code equals the simulator's. The weights are untrained
but non-trivial: only the arithmetic is under test."""
import numpy as np
import pytest

from codec_train.data import load_dataset
from codec_train.simulate import run_graph
from semhil.build import build_firmware
from semhil.dut import Dut
from semhil.pytest_plugin import skip_unless_available
from semhil.errors import SemhilError
from semhil.runners import open_board
from semhil.session import collect_codes

from conftest import untrained_resnet_bundle


@pytest.fixture(scope="session")
def resnet_bundle(tmp_path_factory):
    return untrained_resnet_bundle(tmp_path_factory.mktemp("resnet") / "resnet50-32", 32)


def test_resnet50_stem_codes_equal_the_simulator(resnet_bundle, board_config, backend, tmp_path):
    skip_unless_available(backend, board_config)
    assert [layer["op"] for layer in resnet_bundle.graph["layers"][:3]] == ["conv2d", "maxpool", "conv2d"]
    data = load_dataset("mnist5k", 32)
    symbols, expected = run_graph(resnet_bundle.graph, data.x_test)
    assert len(np.unique(symbols)) > 2
    firmware = build_firmware(resnet_bundle, board_config, backend)
    if board_config.micropython_port == "qemu":  # its module (about 57 KB) needs more heap than MicroPython's QEMU port has
        with pytest.raises(SemhilError, match=rf"board {board_config.name} has \d+ bytes of free heap but loading module "
                                              rf"semhil_model.mpy \({firmware.memory.flash_bytes} bytes\) needs about \d+"):
            open_board(board_config, firmware.path).start()
        return
    with open_board(board_config, firmware.path) as process, Dut(process.port, board_config.name, baud=board_config.uart_baud) as dut:
        dut.wait_ready()
        records = collect_codes(dut, data.x_test, data.y_test, expected, tmp_path / "images.jsonl")
    assert len(records) == len(data.x_test) and all(r["bit_exact"] for r in records)

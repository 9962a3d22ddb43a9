"""The HIL suite: a tiny codec trained once per run, exercised on every board given with --board and
every backend given with --backend (nnom only where NNOM_HOME names an NNoM checkout)."""
import os

import pytest
from rich.progress import Progress

from codec_train.train import PRESETS, train_bundle
from semhil.boards import load_board
from semhil.build import build_firmware
from semhil.dut import Dut
from semhil.runners import BoardProcess
from semhil.session import RunOptions, run_on_board



def pytest_addoption(parser):
    parser.addoption("--board", default="native,qemu-stm32f405", help="comma-separated boards to run the HIL suite on")
    parser.addoption("--backend", default="standalone,nnom", help="comma-separated backends to build the firmware with")


def pytest_generate_tests(metafunc):
    if "board_name" in metafunc.fixturenames:
        metafunc.parametrize("board_name", metafunc.config.getoption("--board").split(","), scope="session")
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", metafunc.config.getoption("--backend").split(","), scope="session")


@pytest.fixture(scope="session")
def board(board_name):
    return load_board(board_name)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    with Progress(disable=True) as progress:
        return train_bundle(PRESETS["tiny"], tmp_path_factory.mktemp("bundle") / "tiny", progress)


def skip_unless_available(backend: str) -> None:
    if backend == "nnom" and not os.environ.get("NNOM_HOME"):
        pytest.skip("needs NNOM_HOME (NNoM checkout)")


@pytest.fixture(scope="session")
def firmware(bundle, board, backend):
    skip_unless_available(backend)
    return build_firmware(bundle, board, backend)


@pytest.fixture(scope="session")
def run_result(bundle, board, backend, firmware):
    return run_on_board(bundle, board, RunOptions(n_images=1000, backend=backend), firmware=firmware)


@pytest.fixture
def running_board(board, firmware):
    with BoardProcess(board, firmware.path) as process:
        yield process


@pytest.fixture
def dut(board, running_board):
    with Dut(running_board.port, board.name, baud=board.uart_baud, timeout_s=5.0) as d:
        d.wait_ready()
        yield d

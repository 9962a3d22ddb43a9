"""The HIL suite: a tiny codec trained once per run, exercised on every board given with --board and
every backend given with --backend (nnom only where NNOM_HOME names an NNoM checkout)."""
import dataclasses
import os

import pytest
import torch
from rich.progress import Progress
from torch import nn

from codec_train.data import load_dataset
from codec_train.train import PRESETS, build_models, train_bundle, write_bundle
from semhil.boards import load_board
from semhil.build import build_firmware
from semhil.dut import Dut
from semhil.runners import BoardProcess
from semhil.session import RunOptions, run_on_board


def pytest_addoption(parser):
    parser.addoption("--board", default="native,qemu-stm32f405,qemu-cortex-m7", help="comma-separated boards to run the HIL suite on")
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


def untrained_resnet_bundle(path, image_size: int):
    """A ResNet-50-stem codec for mnist5k at image_size, untrained but with non-trivial weights,
    batch-norm statistics and centres: only the device arithmetic is under test."""
    config = dataclasses.replace(PRESETS["tiny"], base="resnet50", image_size=image_size)
    data = load_dataset("mnist5k", image_size)
    torch.manual_seed(0)
    task, codec = build_models(config, data.image_shape, data.n_classes)
    with torch.no_grad():
        codec.encoder.quantizer.centres.copy_(torch.linspace(-0.6, 0.9, 8))
        for m in task.stem.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.05, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return write_bundle(path, config, data, task.eval(), codec.eval(), {})


def another_bundle(bundle, path):
    """The same weights sealed as another bundle: a firmware built from one is refused for the other."""
    from codec_train.bundle import load_bundle, seal
    path.mkdir()
    for name in ("config.json", "task.pt", "codec.pt", "device_graph.json"):
        (path / name).write_bytes((bundle.path / name).read_bytes())
    (path / "metrics.json").write_text('{"note": "same weights, another bundle"}')
    seal(path)
    return load_bundle(path)


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

"""The HIL suite, on semhil's pytest plugin (semhil.pytest_plugin): a tiny codec trained once per run,
exercised on every board given with --board or --hardware-map and every backend given with --backend
(nnom only where NNOM_HOME names an NNoM checkout)."""
import dataclasses

import pytest
import torch
from torch import nn

from codec_train.data import load_dataset
from codec_train.train import PRESETS, build_models, write_bundle
from semhil.runners import BoardProcess
from semhil.session import RunOptions, run_on_board


def untrained_resnet_bundle(path, image_size: int, dataset: str = "mnist5k", base: str = "resnet50"):
    """A codec with a ResNet-50 (or another base's) stem for `dataset` at image_size, untrained but with
    non-trivial weights, batch-norm statistics and centres: only the device arithmetic is under test."""
    config = dataclasses.replace(PRESETS["tiny"], base=base, image_size=image_size, dataset=dataset)
    data = load_dataset(dataset, image_size)
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


@pytest.fixture(scope="session")
def run_result(bundle, board, backend):
    """The whole test split through the session's board."""
    return run_on_board(bundle, board.config, RunOptions(n_images=1000, backend=backend), firmware=board.firmware,
                        process=board.process)


@pytest.fixture
def running_board(board_config, firmware):
    """A board process of the test's own, for tests that freeze or kill it."""
    if board_config.run_kind == "probe":
        pytest.skip("freezes or kills the board's process: a silicon board has none to signal")
    with BoardProcess(board_config, firmware.path) as process:
        yield process

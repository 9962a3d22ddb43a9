"""The HIL suite, on semhil's pytest plugin (semhil.pytest_plugin): a tiny codec trained once per run,
exercised on every board given with --board or --hardware-map and every backend given with --backend
(nnom only where NNOM_HOME names an NNoM checkout)."""
import pytest

from codec_train.untrained import untrained_resnet_bundle  # noqa: F401 - the HIL tests' ResNet codecs, from the product
from semhil.runners import open_board
from semhil.session import RunOptions, run_on_board


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
    if board_config.run_kind == "probe" or (board_config.run_kind == "micropython" and board_config.micropython_port is None):
        pytest.skip("freezes or kills the board's process: a silicon board has none to signal")
    with open_board(board_config, firmware.path) as process:
        yield process

"""A board on another computer: its serial port served over RFC 2217, driven through the network.
Here the native board and the server share localhost; the harness sees only the rfc2217:// URL."""
import numpy as np
import pytest

from semhil.boards import load_board
from semhil.build import build_firmware
from semhil.remote import PortServer
from semhil.runners import BoardProcess
from semhil.session import BundleMismatch, RunOptions, run_on_board

from conftest import another_bundle


@pytest.fixture
def served_native_board(bundle):
    board = load_board("native")
    firmware = build_firmware(bundle, board)
    with BoardProcess(board, firmware.path) as process, PortServer(process.port) as server:
        yield board, firmware, server


def test_native_board_through_an_rfc2217_server(bundle, served_native_board):
    board, firmware, server = served_native_board
    result = run_on_board(bundle, board, RunOptions(n_images=50, port_url=server.url), firmware=firmware)
    assert server.clients == 1 and server.url.startswith("rfc2217://127.0.0.1:")
    assert result["n_images"] == 50 and result["bit_exact_fraction"] == 1.0
    assert result["board_info"]["board"] == "native" and np.isfinite(result["round_trip_ms"]["median"])


def test_a_served_board_with_another_bundles_firmware_is_refused(bundle, served_native_board, tmp_path):
    board, firmware, server = served_native_board
    other = another_bundle(bundle, tmp_path / "other")
    with pytest.raises(BundleMismatch, match=f"not {other.hash}"):
        run_on_board(other, board, RunOptions(n_images=5, port_url=server.url))

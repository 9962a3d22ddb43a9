"""A protected bundle on every board and backend: the device's FEC (device/core/ee_fec.c, after the packer)
sends exactly what the simulator's radio.fec encoder computes."""
import pytest

from codec_train.bundle import protected_bundle
from codec_train.data import load_dataset
from codec_train.simulate import run_graph
from radio.fec import parse_fec
from semhil.build import build_firmware
from semhil.dut import Dut
from semhil.pytest_plugin import skip_unless_available
from semhil.runners import open_board
from semhil.session import check_firmware, collect_codes

# Blocks of 55 data bytes: a code of more than 110 bytes (the tiny preset's is 147) makes two whole blocks and a
# shortened one; a 7-deep interleaver does not divide its bits.
SPEC = "rs:200,interleave=7"


@pytest.fixture(scope="module")
def protected(bundle):
    return protected_bundle(bundle, parse_fec(SPEC))


def test_protected_code_on_the_board_equals_the_simulator(protected, board_config, backend, tmp_path):
    skip_unless_available(backend, board_config)
    data = load_dataset(protected.config["dataset"], protected.config.get("image_size"))
    images, labels = data.x_test[:12], data.y_test[:12]
    _, expected = run_graph(protected.graph, images)
    fec = protected.graph["fec"]
    assert protected.graph["code_bytes"] > 2 * (255 - 200), "the code should span several RS blocks"
    assert expected.shape[1] == fec["sent_bytes"] + protected.graph.get("side_bytes", 0)
    firmware = build_firmware(protected, board_config, backend)
    with open_board(board_config, firmware.path) as process, Dut(process.port, board_config.name, baud=board_config.uart_baud) as dut:
        info = dut.wait_ready()
        check_firmware(info, protected, board_config)
        records = collect_codes(dut, images, labels, expected, tmp_path / "images.jsonl")
    assert int(info["code_bytes"]) == expected.shape[1]
    assert len(records) == len(images) and all(r["bit_exact"] for r in records)

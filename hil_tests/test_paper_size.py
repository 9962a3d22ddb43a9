"""The paper's configuration: a ResNet-50 stem and the encoder on 128x128 images, 768 B per image.
Its activations need more RAM than the STM32F405 has: qemu-cortex-m7 runs it, qemu-stm32f405
refuses it before anything is flashed."""
import numpy as np
import pytest

from codec_train.data import load_dataset
from codec_train.simulate import run_graph
from semhil.boards import load_board
from semhil.build import ModelTooLarge, build_firmware
from semhil.dut import Dut
from semhil.pytest_plugin import skip_unless_available
from semhil.runners import BoardProcess
from semhil.session import collect_codes

from conftest import untrained_resnet_bundle

N_IMAGES = 10


@pytest.fixture(scope="module")
def paper_bundle(tmp_path_factory):
    return untrained_resnet_bundle(tmp_path_factory.mktemp("paper") / "resnet50-128", 128)


def test_paper_size_codec_sends_768_bytes_per_image(paper_bundle):
    assert paper_bundle.graph["code_bytes"] == 768


def test_paper_size_codec_is_bit_exact_on_qemu_cortex_m7(paper_bundle, backend, tmp_path):
    skip_unless_available(backend)
    board = load_board("qemu-cortex-m7")
    data = load_dataset("mnist5k", 128)
    images, labels = data.x_test[:N_IMAGES], data.y_test[:N_IMAGES]
    symbols, expected = run_graph(paper_bundle.graph, images)
    assert len(np.unique(symbols)) > 2
    firmware = build_firmware(paper_bundle, board, backend)
    with BoardProcess(board, firmware.path) as process, Dut(process.port, board.name, baud=board.uart_baud) as dut:
        dut.wait_ready()
        records = collect_codes(dut, images, labels, expected, tmp_path / "images.jsonl")
    assert [r["bit_exact"] for r in records] == [True] * N_IMAGES
    assert firmware.memory.ram_static_bytes > 128 * 1024  # what makes it too large for the STM32F405


def test_paper_size_codec_is_refused_on_qemu_stm32f405_with_the_ram_it_needs(paper_bundle):
    board = load_board("qemu-stm32f405")
    with pytest.raises(ModelTooLarge, match=r"does not fit qemu-stm32f405: needs [\d,.]+ KB RAM \(.*\), board has 128.0 KB"):
        build_firmware(paper_bundle, board, "standalone")
    assert not (paper_bundle.path / "build" / "qemu-stm32f405-standalone" / "firmware.elf").exists()

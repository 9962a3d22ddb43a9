"""The paper's configurations on the 128 KB STM32F405: a ResNet-50 stem and the encoder on RGB images at
128x128 (768 B per image) and 224x224 (2,352 B, the ImageNet-200 setting), and a MobileNetV2 stem at
128x128. The standalone backend streams each image in chunks of rows and computes it in row bands, so
it never holds the image, let alone a whole activation; NNoM runs whole tensors and needs a board with
more RAM, which the same module shows side by side."""
import numpy as np
import pytest

from codec_train.data import load_dataset
from codec_train.simulate import run_graph
from codec_train.untrained import photo_folder, untrained_resnet_bundle
from semhil.backends.graph import activation_lower_bound
from semhil.backends.standalone import plan
from semhil.boards import board_names, load_board
from semhil.build import ModelTooLarge, build_firmware
from semhil.dut import Dut
from semhil.pytest_plugin import skip_unless_available
from semhil.runners import BoardProcess
from semhil.session import collect_codes

N_IMAGES = 10
CODECS = {"resnet50-128": ("resnet50", 128, 768), "resnet50-224": ("resnet50", 224, 2352), "mobilenetv2-128": ("mobilenetv2", 128, None)}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return f"folder:{photo_folder(tmp_path_factory.mktemp('photos'))}"


@pytest.fixture(scope="module")
def codecs(tmp_path_factory, photos):
    root = tmp_path_factory.mktemp("paper")
    return {name: untrained_resnet_bundle(root / name, size, photos, base) for name, (base, size, _) in CODECS.items()}


def run_images(bundle, board, backend, photos, tmp_path):
    data = load_dataset(photos, bundle.config["image_size"])
    images, labels = data.x_test[:N_IMAGES], data.y_test[:N_IMAGES]
    symbols, expected = run_graph(bundle.graph, images)
    assert len(np.unique(symbols)) > 2, "the test images should use several centres"
    firmware = build_firmware(bundle, board, backend)
    with BoardProcess(board, firmware.path) as process, Dut(process.port, board.name, baud=board.uart_baud) as dut:
        info = dut.wait_ready()
        records = collect_codes(dut, images, labels, expected, tmp_path / "images.jsonl")
    return firmware, info, records


@pytest.mark.parametrize("name", CODECS)
def test_paper_codecs_stream_bit_exact_on_the_128_kb_stm32f405(codecs, name, photos, tmp_path):
    board = load_board("qemu-stm32f405")
    bundle = codecs[name]
    expected_bytes = CODECS[name][2]
    if expected_bytes:
        assert bundle.graph["code_bytes"] == expected_bytes
    firmware, info, records = run_images(bundle, board, "standalone", photos, tmp_path)
    assert [r["bit_exact"] for r in records] == [True] * N_IMAGES
    peak = firmware.memory.ram_static_bytes + max(r["stack_peak_bytes"] for r in records)
    assert peak < board.ram_bytes < activation_lower_bound(bundle.graph)  # whole tensors would never fit
    assert int(info["arena_bytes"]) == plan(bundle.graph).arena_bytes
    assert int(info["chunk_bytes"]) < int(info["row_bytes"]) * int(info["input_rows"])  # the image arrives in pieces
    assert all(0 < r["ticks_after_last_byte"] < r["ticks"] for r in records)


def test_a_chunk_larger_than_the_224_codec_announces_is_refused(codecs, photos):
    """On the STM32F405 an image of 224 rows goes up a few rows a chunk: one row more than INFO allows
    is refused, naming the limit, and the board goes on coding images bit-exactly."""
    from test_loop import exchange, refused
    from semhil.protocol import ErrorCode, MsgType, encode_image_chunk
    bundle, board = codecs["resnet50-224"], load_board("qemu-stm32f405")
    image = load_dataset(photos, 224).x_test[:1]
    _, expected = run_graph(bundle.graph, image)
    firmware = build_firmware(bundle, board, "standalone")
    with BoardProcess(board, firmware.path) as process, Dut(process.port, board.name, baud=board.uart_baud) as dut:
        info = dut.wait_ready()
        chunk_rows, row_bytes = int(info["chunk_rows"]), int(info["row_bytes"])
        assert 1 <= chunk_rows < int(info["input_rows"])
        pixels = image.tobytes()[:(chunk_rows + 1) * row_bytes]
        text = refused(exchange(dut, MsgType.IMAGE_CHUNK, encode_image_chunk(9, 0, pixels)), ErrorCode.CHUNK_TOO_LARGE)
        assert f"chunk_rows={chunk_rows}" in text or f"chunk_bytes={chunk_rows * row_bytes}" in text
        assert dut.infer(image.tobytes()).code == expected[0].tobytes()


def test_the_224_codec_builds_for_every_board(codecs):
    for name in board_names():
        firmware = build_firmware(codecs["resnet50-224"], load_board(name), "standalone")
        assert firmware.memory.flash_bytes > 9408  # the stem's weights alone are 64 x 148 bytes


def test_nnom_runs_whole_tensors_and_is_refused_on_the_stm32f405(codecs):
    skip_unless_available("nnom")
    with pytest.raises(ModelTooLarge, match=r"does not fit qemu-stm32f405: needs [\d,.]+ KB RAM"):
        build_firmware(codecs["resnet50-128"], load_board("qemu-stm32f405"), "nnom")


def test_nnom_runs_the_128_codec_bit_exact_on_qemu_cortex_m7(codecs, photos, tmp_path):
    skip_unless_available("nnom")
    firmware, _, records = run_images(codecs["resnet50-128"], load_board("qemu-cortex-m7"), "nnom", photos, tmp_path)
    assert [r["bit_exact"] for r in records] == [True] * N_IMAGES
    assert firmware.memory.ram_static_bytes > 128 * 1024  # what makes it too large for the STM32F405

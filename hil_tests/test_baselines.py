"""The baselines (codec_train/baselines): what each sends, that each learns, and that each device half
runs on every board bit-exact with its simulator; and `semhil compare` end to end."""
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.progress import Progress

from codec_train.codes import entropy_coded_bytes, huffman_lengths
from codec_train.compare import compare_configs, largest_crop_ratio
from codec_train.crop import crop_box
from codec_train.data import load_dataset
from codec_train.simulate import run_graph
from codec_train.train import PRESETS, TrainConfig, build_models, float_payloads, float_symbols, train_bundle
from semhil.backends import nnom
from semhil.build import build_firmware
from semhil.dut import Dut
from semhil.errors import SemhilError
from semhil.pytest_plugin import skip_unless_available
from semhil.runners import open_board
from semhil.session import collect_codes

BASELINES = ("raw-image", "raw-feature", "deepcod", "agilenn", "aecnn", "adjscc")
QUICK = dataclasses.replace(PRESETS["tiny"], train_images=600, task_epochs=2, stage1_epochs=1, stage2_epochs=2, calibration_images=128)
SEMHIL = Path(sys.executable).parent / "semhil"
MNIST = (28, 28, 1)  # the small CNN's stem: 16 channels at 28x28; the k4 s4 encoders: 7x7


def sent_bytes(h, w, c, bits):
    return math.ceil(h * w * c * bits / 8)


EXPECTED_BYTES = {  # (bytes over the radio, side bytes), from the shapes each baseline's module describes
    "raw-image": (sent_bytes(28, 28, 1, 8), 0),
    "raw-feature": (sent_bytes(28, 28, 16, 8), 0),
    "deepcod": (sent_bytes(7, 7, 8, 3), 0),
    "agilenn": (sent_bytes(7, 7, 8 - 2, 3), 4 * 10),  # 20 % of 8 channels stay local; 10 float32 logits
    "aecnn": (sent_bytes(7, 7, 16 // 4, 4), 0),
    "adjscc": (sent_bytes(7, 7, 8, 3), 0),
}


@pytest.fixture(scope="session")
def mnist():
    return load_dataset("mnist5k")


@pytest.fixture(scope="session")
def baseline_bundles(tmp_path_factory, mnist):
    """Each baseline trained for a few epochs on 600 images: enough to learn something, seconds each."""
    folder = tmp_path_factory.mktemp("baselines")
    with Progress(disable=True) as progress:
        return {name: train_bundle(dataclasses.replace(QUICK, codec=name), folder / name, progress, data=mnist) for name in BASELINES}


@pytest.mark.parametrize("name", BASELINES)
def test_bytes_per_image(name, baseline_bundles, mnist):
    bundle = baseline_bundles[name]
    code, side = EXPECTED_BYTES[name]
    _, codec = bundle.load_models()
    assert (codec.shape.bytes_per_image, codec.side_bytes) == (code, side)
    assert (bundle.graph["code_bytes"], bundle.graph["side_bytes"]) == (code, side)
    assert run_graph(bundle.graph, mnist.x_test[:4])[1].shape == (4, code + side)


@pytest.mark.parametrize("name", BASELINES)
def test_training_loss_falls(name, baseline_bundles):
    """The last phase each baseline trains (the task CNN's for the uncoded ones, whose codec learns nothing)."""
    losses = baseline_bundles[name].metrics["losses"]
    last = {"raw-image": "task", "raw-feature": "task", "adjscc": "stage1"}.get(name, "codec_fine")
    assert len(losses[last]) >= 2 and losses[last][-1] < losses[last][0], losses


@pytest.mark.parametrize("name", BASELINES)
def test_int8_device_half_agrees_with_the_float_one(name, baseline_bundles, mnist):
    bundle = baseline_bundles[name]
    task, codec = bundle.load_models()
    images = mnist.x_test[:300]
    symbols, payloads = run_graph(bundle.graph, images)
    assert np.mean(symbols == float_symbols(task, codec, images)) >= 0.99
    if codec.side_bytes:  # the local logits: float32 on both sides, summed in another order
        code = codec.shape.bytes_per_image
        on_device = payloads[:, code:].copy().view("<f4")
        in_float = float_payloads(task, codec, images)[:, code:].copy().view("<f4")
        np.testing.assert_allclose(on_device, in_float, rtol=1e-3, atol=1e-3)


def test_agilenn_local_logits_stay_off_the_channel(baseline_bundles, mnist):
    """Only the code crosses the bit channel: at BER 0.5 the local logits still arrive intact."""
    from codec_train.edge import transmit
    from radio.channel import IidChannel
    _, codec = baseline_bundles["agilenn"].load_models()
    _, payloads = run_graph(baseline_bundles["agilenn"].graph, mnist.x_test[:200])
    received, _ = transmit(codec, payloads, IidChannel(0.5), seed=0)
    code = codec.shape.bytes_per_image
    assert np.array_equal(received[:, code:], payloads[:, code:])
    assert np.mean(np.unpackbits(received[:, :code] ^ payloads[:, :code])) == pytest.approx(0.5, abs=0.01)


def test_matched_semanticnn_sends_the_most_that_fits_agilenns_budget():
    base = PRESETS["demo"]
    configs = compare_configs(base, ("semanticnn-matched", "agilenn"), MNIST, 10)
    budget = build_models(configs["agilenn"], MNIST, 10)[1].shape.bytes_per_image
    matched = build_models(configs["semanticnn-matched"], MNIST, 10)[1].shape
    assert matched.bytes_per_image <= budget
    side = crop_box(7, 7, configs["semanticnn-matched"].crop_ratio)[2]
    bigger = dataclasses.replace(base, crop_ratio=min(1.0, ((side + 1.5) / 7) ** 2))
    assert build_models(bigger, MNIST, 10)[1].shape.bytes_per_image > budget  # one row and column more would not fit
    with pytest.raises(SemhilError, match="fits in 2 bytes"):
        largest_crop_ratio(base, MNIST, 10, 2)


def test_unknown_codec_names_the_choices():
    with pytest.raises(SemhilError, match="unknown codec 'jpeg'.*agilenn"):
        build_models(TrainConfig(codec="jpeg"), MNIST, 10)
    with pytest.raises(SemhilError, match="unknown codec.*jpeg.*semanticnn-matched"):
        compare_configs(PRESETS["tiny"], ("jpeg",), MNIST, 10)


def test_huffman_code_lengths_and_size():
    assert list(huffman_lengths(np.array([1, 1, 2, 4]))) == [3, 3, 2, 1]
    symbols = np.array([[3, 3, 3, 3, 2, 2, 1, 0]] * 5)  # 4*1 + 2*2 + 3 + 3 = 14 bits: 2 bytes
    assert entropy_coded_bytes(symbols, symbols, 4) == 2.0


def test_nnom_refuses_the_raw_image_and_generates_the_rest(baseline_bundles):
    with pytest.raises(SemhilError, match="standalone backend"):
        nnom.generate(baseline_bundles["raw-image"].graph, "0" * 16)
    for name in BASELINES[1:]:
        assert "model_compile" in nnom.generate(baseline_bundles[name].graph, "0" * 16)["model.c"]


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_device_half_on_the_board_equals_its_simulator(name, baseline_bundles, mnist, board_config, backend, tmp_path):
    skip_unless_available(backend, board_config)
    if backend == "nnom" and name == "raw-image":
        pytest.skip("the raw image has no layer for NNoM (test_nnom_refuses_the_raw_image_and_generates_the_rest)")
    bundle = baseline_bundles[name]
    images, labels = mnist.x_test[:40], mnist.y_test[:40]
    _, expected = run_graph(bundle.graph, images)
    firmware = build_firmware(bundle, board_config, backend)
    with open_board(board_config, firmware.path) as process, Dut(process.port, board_config.name, baud=board_config.uart_baud) as dut:
        dut.wait_ready()
        records = collect_codes(dut, images, labels, expected, tmp_path / "images.jsonl")
    assert len(records) == len(images) and all(r["bit_exact"] for r in records)


def test_compare_trains_runs_and_reports(tmp_path):
    """semhil compare on the native board: a table, compare.json with each codec's figures, a report."""
    out = tmp_path / "compare"
    proc = subprocess.run([str(SEMHIL), "compare", "--preset", "tiny", "--codecs", "semanticnn-matched,agilenn,raw-image",
                           "--board", "native", "--images", "100", "--ber", "0,0.05", "--out", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "codecs compared on native" in proc.stdout
    rows = {row["codec"]: row for row in json.loads((out / "compare.json").read_text())["codecs"]}
    assert list(rows) == ["semanticnn-matched", "agilenn", "raw-image"]
    assert rows["semanticnn-matched"]["bytes_per_image"] <= rows["agilenn"]["bytes_per_image"] < rows["raw-image"]["bytes_per_image"]
    assert rows["agilenn"]["side_bytes"] == 40 and rows["semanticnn-matched"]["crop_ratio"] < 1
    for row in rows.values():
        assert row["bit_exact_fraction"] == 1.0 and row["n_images"] == 100
        assert set(row["accuracy"]) == {"0.0", "0.05"} and row["device"]["flash_bytes"] > 0
        assert row["accuracy"]["0.0"] > 0.5
    assert (out / "report" / "report.html").is_file()

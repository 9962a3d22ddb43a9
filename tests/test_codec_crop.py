"""The crop ratio on the baselines that had none (raw-image, raw-feature, deepcod): the device sends the
centred crop of its symbol map, in the float model, the int8 simulator and the standalone firmware alike,
and the edge restores the full map by reflection padding before decoding."""
import math

import numpy as np
import pytest
import torch
from rich.progress import Progress

from codec_train.baselines import deepcod
from codec_train.checkpoint import Checkpoint
from codec_train.data import to_float
from codec_train.export import crop_layer, export_device_graph, export_stem
from codec_train.simulate import run_graph
from codec_train.train import TrainConfig, build_models
from semhil.errors import SemhilError
from test_standalone_kernels import compile_model, random_images, run_compiled

IMAGE = (28, 28, 1)
N_CLASSES = 10
# (H, W, C) of each codec's whole symbol map on the small CNN and 28x28x1 images, and its bits per symbol
FULL = {"raw-image": ((28, 28, 1), 8), "raw-feature": ((28, 28, 16), 8), "deepcod": ((7, 7, 8), 3)}
CODECS = list(FULL)
RATIOS = [0.5, 0.25]


def images() -> np.ndarray:
    return random_images(0, IMAGE)


def models(codec: str, ratio: float):
    """The task CNN and an untrained codec with non-trivial symbols; the same weights for every ratio."""
    torch.manual_seed(0)
    task, model = build_models(TrainConfig(codec=codec, crop_ratio=ratio), IMAGE, N_CLASSES)
    task, model = task.eval(), model.eval()
    with torch.no_grad():
        if codec == "raw-feature":  # the stem output's format, as training fixes it
            model.feature_quant.set_format(export_stem(task, images())[0][-1]["out_dec"])
        elif codec == "deepcod":  # levels spread over the encoder's output
            model.place_levels(task.stem(to_float(images())))
    return task, model


def crop_of(full_shape, ratio: float) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred crop, worked out here from floor(sqrt(ratio) * side)."""
    h, w = (math.floor(math.sqrt(ratio) * side) for side in full_shape[:2])
    return (full_shape[0] - h) // 2, (full_shape[1] - w) // 2, h, w


def centre(symbols: np.ndarray, full_shape, ratio: float) -> np.ndarray:
    top, left, h, w = crop_of(full_shape, ratio)
    return symbols[:, top:top + h, left:left + w, :]


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("codec", CODECS)
def test_bytes_per_image_shrink_with_the_crop(codec, ratio):
    (full_shape, bits), (_, _, h, w) = FULL[codec], crop_of(FULL[codec][0], ratio)
    whole = models(codec, 1.0)[1].shape
    cropped = models(codec, ratio)[1].shape
    assert tuple(whole.sent_shape) == full_shape and whole.bytes_per_image == math.ceil(math.prod(full_shape) * bits / 8)
    assert tuple(cropped.full_shape) == full_shape
    assert tuple(cropped.sent_shape) == (h, w, full_shape[2])
    assert cropped.bytes_per_image == math.ceil(h * w * full_shape[2] * bits / 8) < whole.bytes_per_image


@pytest.mark.parametrize("codec", CODECS)
def test_crop_ratio_1_gives_the_graph_without_a_crop(codec):
    task, model = models(codec, 1.0)
    graph = export_device_graph(task, model, images())
    assert "crop" not in [layer["op"] for layer in graph["layers"]]
    assert graph["code_shape"] == list(FULL[codec][0])
    if codec == "raw-image":
        assert [layer["op"] for layer in graph["layers"]] == ["pack"] and graph["input"]["raw_pixels"]


@pytest.mark.parametrize("codec", ["raw-image", "raw-feature"])
def test_a_crop_too_small_for_the_map_is_a_clear_error(codec):
    with pytest.raises(SemhilError, match="no crop of ratio"):
        build_models(TrainConfig(codec=codec, crop_ratio=0.001), IMAGE, N_CLASSES)


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("codec", CODECS)
def test_simulator_sends_the_centre_crop_of_the_uncropped_symbols(codec, ratio):
    full_shape, bits = FULL[codec]
    x = images()
    task, whole = models(codec, 1.0)
    _, cropped = models(codec, ratio)
    whole_graph, cropped_graph = (export_device_graph(task, m, x) for m in (whole, cropped))
    assert cropped_graph["layers"][:-2] == whole_graph["layers"][:-1]
    assert cropped_graph["layers"][-2] == crop_layer(list(full_shape), ratio)
    whole_symbols, _ = run_graph(whole_graph, x)
    symbols, payloads = run_graph(cropped_graph, x)
    assert len(np.unique(whole_symbols)) > 2, "test images should use several symbols"
    assert np.array_equal(symbols, centre(whole_symbols, full_shape, ratio))
    assert payloads.shape == (len(x), cropped.shape.bytes_per_image) == (len(x), cropped_graph["code_bytes"])
    with torch.no_grad():  # the float device half crops alike
        float_whole, float_cropped = (m.float_symbols(task, x).numpy() for m in (whole, cropped))
    assert float_cropped.shape == (len(x), *cropped.shape.sent_shape)
    assert np.array_equal(float_cropped, centre(float_whole, full_shape, ratio))


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("codec", CODECS)
def test_logits_restore_the_full_map_by_reflection(codec, ratio):
    """The cropped codec's logits are the uncropped codec's on the crop reflection-padded to full size."""
    full_shape, _ = FULL[codec]
    x = images()[:16]
    task, whole = models(codec, 1.0)
    _, cropped = models(codec, ratio)
    symbols, _ = run_graph(export_device_graph(task, cropped, x), x)
    top, left, h, w = crop_of(full_shape, ratio)
    pads = ((0, 0), (top, full_shape[0] - h - top), (left, full_shape[1] - w - left), (0, 0))
    restored = np.pad(symbols, pads, mode="reflect")
    ber, side = torch.zeros(len(x)), torch.zeros((len(x), 0), dtype=torch.uint8)
    with torch.no_grad():
        logits = cropped.logits(task, torch.from_numpy(symbols), ber, side)
        expected = whole.logits(task, torch.from_numpy(restored), ber, side)
    assert logits.shape == (len(x), N_CLASSES) and torch.isfinite(logits).all()
    assert torch.allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_deepcod_trains_on_the_crop():
    task, codec = models("deepcod", 0.25)
    codec.train()
    feature = task.stem(to_float(images()[:8]))
    with torch.no_grad():
        teacher = task.tail(feature)
    loss = deepcod.loss(task, codec, feature, teacher, torch.zeros(8, dtype=torch.long), TrainConfig(), quantized=True)
    loss.backward()
    assert torch.isfinite(loss) and codec.conv.weight.grad is not None


def test_deepcod_trains_with_a_crop_end_to_end():
    """A few steps of the two-step training, with the crop."""
    task, codec = models("deepcod", 0.5)
    config = TrainConfig(codec="deepcod", crop_ratio=0.5, stage1_epochs=1, stage2_epochs=1, batch_size=16)
    x = to_float(images())
    with Progress(disable=True) as progress:
        stages = deepcod.train(task, codec, x, torch.zeros(len(x), dtype=torch.long), config, progress,
                               Checkpoint(None, "test", False), images())
    assert stages == ["codec", "codec_fine"]
    with torch.no_grad():
        assert codec.float_symbols(task, images()).shape == (len(x), *codec.shape.sent_shape)


@pytest.mark.parametrize("codec,ratio", [("raw-image", 0.5), ("raw-image", 0.25), ("raw-feature", 0.5), ("raw-feature", 0.25),
                                         ("deepcod", 0.5)])
def test_standalone_firmware_sends_the_simulators_cropped_codes(tmp_path, codec, ratio):
    task, model = models(codec, ratio)
    x = images()
    graph = export_device_graph(task, model, x)
    assert graph["layers"][-2]["op"] == "crop"
    _, expected = run_graph(graph, x)
    assert np.array_equal(run_compiled(compile_model(graph, tmp_path), x, expected.shape[1]), expected)

"""The standalone C kernels, compiled for this computer, give the simulator's codes bit for bit."""
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from codec_train.export import dec_bits, export_device_graph
from codec_train.train import TrainConfig, build_models
from codec_train.simulate import conv2d_s8, run_graph
from semhil.build import COMMON_FLAGS
from semhil.codegen import generate_model
from semhil.errors import SemhilError
from semhil.paths import DEVICE_DIR

HERE = Path(__file__).parent


def compile_model(graph: dict, tmp_path: Path) -> Path:
    model_dir = generate_model(graph, "0123456789abcdef", tmp_path / "model")
    exe = tmp_path / "driver"
    sources = [HERE / "kernel_driver.c", model_dir / "model.c", DEVICE_DIR / "kernels" / "kernels.c"]
    subprocess.run(["gcc", *COMMON_FLAGS, f"-I{model_dir}", f"-I{DEVICE_DIR / 'kernels'}", *map(str, sources), "-o", str(exe), "-lm"], check=True)
    return exe


def random_models(seed: int, crop_ratio: float = 1.0):
    torch.manual_seed(seed)
    task, codec = build_models(TrainConfig(crop_ratio=crop_ratio), (28, 28, 1), 10)
    with torch.no_grad():  # an untrained but non-trivial encoder: spread-out centres, random GDN
        codec.encoder.quantizer.centres.copy_(torch.linspace(-0.6, 0.9, 8))
        codec.encoder.gdn.gamma_raw.add_(0.2 * torch.rand_like(codec.encoder.gdn.gamma_raw))
    return task, codec


@pytest.mark.parametrize("seed,crop_ratio", [(0, 1.0), (1, 1.0), (2, 0.2)])
def test_c_kernels_equal_simulator(tmp_path, seed, crop_ratio):
    task, codec = random_models(seed, crop_ratio)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(64, 28, 28, 1), dtype=np.uint8)
    images[:8] = 0  # edge cases: blank and saturated images
    images[8:16] = 255
    graph = export_device_graph(task, codec, images)
    symbols, expected = run_graph(graph, images)
    assert len(np.unique(symbols)) > 2, "test images should use several centres"
    out = subprocess.run([str(compile_model(graph, tmp_path))], input=images.tobytes(), capture_output=True, check=True).stdout
    codes = np.frombuffer(out, np.uint8).reshape(expected.shape)
    assert np.array_equal(codes, expected)


def test_int8_conv_matches_the_definition():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(2, 5, 6, 3), dtype=np.int8)
    w = rng.integers(-128, 128, size=(4, 3, 3, 3))
    b = rng.integers(-128, 128, size=4)
    layer = {"kernel": [3, 3], "stride": [2, 1], "padding": [1, 1], "out_shape": [3, 6, 4], "weight": w.ravel().tolist(),
             "bias": b.tolist(), "bias_shift": 2, "out_shift": 7, "relu": True}
    y = conv2d_s8(x, layer)
    xp = np.pad(x.astype(np.int64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    for n in range(2):
        for oy in range(3):
            for ox in range(6):
                for oc in range(4):
                    acc = (int(b[oc]) << 2) + 64 + int((xp[n, 2 * oy:2 * oy + 3, ox:ox + 3, :] * w[oc]).sum())
                    assert y[n, oy, ox, oc] == max(0, min(127, max(-128, acc >> 7)))


def test_dec_bits_follow_nnom():
    assert dec_bits(1.0) == 7 and dec_bits(0.9) == 7 and dec_bits(1.1) == 6 and dec_bits(0.2) == 9 and dec_bits(0.0) == 7


def test_layer_without_a_kernel_is_named_in_the_error():
    task, codec = random_models(0)
    task.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
    with pytest.raises(SemhilError, match=r"stem\.1 \(BatchNorm2d\).*supported"):
        export_device_graph(task, codec, np.zeros((4, 28, 28, 1), np.uint8))

"""The standalone C kernels, compiled for this computer, give the simulator's codes bit for bit:
in plain C and through the DSP (SMLAD) path with C stand-ins for the intrinsics."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from codec_train.export import export_device_graph, fold_batchnorm
from codec_train.qformat import dec_bits
from codec_train.simulate import conv2d_s8, maxpool_s8, run_graph
from codec_train.train import TrainConfig, build_models
from semhil.backends import generate_model
from semhil.backends.graph import activation_lower_bound
from semhil.backends.standalone import plan
from semhil.build import COMMON_FLAGS
from semhil.errors import SemhilError
from semhil.paths import DEVICE_DIR

HERE = Path(__file__).parent
needs_nnom = pytest.mark.skipif(not os.environ.get("NNOM_HOME"), reason="needs NNOM_HOME (NNoM checkout)")


def compile_model(graph: dict, tmp_path: Path, dsp: bool = False) -> Path:
    model_dir = generate_model(graph, "0123456789abcdef", tmp_path / "model")
    exe = tmp_path / ("driver-dsp" if dsp else "driver")
    sources = [HERE / "kernel_driver.c", model_dir / "model.c", *(DEVICE_DIR / "kernels").glob("*.c")]
    includes = [f"-I{d}" for d in (model_dir, DEVICE_DIR / "kernels", DEVICE_DIR / "core")]
    flags = ["-DK_EMULATE_DSP"] if dsp else []
    subprocess.run(["gcc", *COMMON_FLAGS, *flags, *includes, *map(str, sources), "-o", str(exe), "-lm"], check=True)
    return exe


def run_compiled(exe: Path, images: np.ndarray, code_bytes: int) -> np.ndarray:
    out = subprocess.run([str(exe)], input=images.tobytes(), capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(len(images), code_bytes)


def randomise(task, codec):
    """An untrained but non-trivial device half: spread-out centres, random GDN and BatchNorm statistics."""
    with torch.no_grad():
        codec.encoder.quantizer.centres.copy_(torch.linspace(-0.6, 0.9, 8))
        codec.encoder.gdn.gamma_raw.add_(0.2 * torch.rand_like(codec.encoder.gdn.gamma_raw))
    for m in task.stem.modules():
        if isinstance(m, nn.BatchNorm2d):
            randomise_batchnorm(m)
    return task.eval(), codec.eval()


@torch.no_grad()
def randomise_batchnorm(bn: nn.BatchNorm2d) -> None:
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.05, 2.0)
    bn.weight.uniform_(0.5, 1.5)
    bn.bias.uniform_(-0.3, 0.3)


def random_models(seed: int, crop_ratio: float = 1.0, base: str = "small", image_shape=(28, 28, 1)):
    torch.manual_seed(seed)
    return randomise(*build_models(TrainConfig(base=base, crop_ratio=crop_ratio), image_shape, 10))


def random_images(seed: int, shape) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(64, *shape), dtype=np.uint8)
    images[:8] = 0  # edge cases: blank and saturated images
    images[8:16] = 255
    return images


def random_case(base: str, image_shape, crop_ratio: float):
    """(device graph, test images, the simulator's symbols and codes) of a random codec."""
    task, codec = random_models(0, crop_ratio, base, image_shape)
    images = random_images(0, image_shape)
    graph = export_device_graph(task, codec, images)
    return graph, images, *run_graph(graph, images)


# The last case's code map is too large to keep in float32: its second pass computes the float layers again.
CASES = [("small", (28, 28, 1), 1.0), ("small", (28, 28, 1), 0.2), ("resnet50", (32, 32, 3), 1.0), ("mobilenetv2", (16, 16, 3), 1.0),
         ("mobilenetv2", (160, 160, 3), 0.5)]


@pytest.mark.parametrize("base,image_shape,crop_ratio", CASES)
@pytest.mark.parametrize("dsp", [False, True], ids=["plain-c", "dsp-path"])
def test_c_kernels_equal_simulator(tmp_path, base, image_shape, crop_ratio, dsp):
    graph, images, symbols, expected = random_case(base, image_shape, crop_ratio)
    assert len(np.unique(symbols)) > 2, "test images should use several centres"
    codes = run_compiled(compile_model(graph, tmp_path, dsp), images, graph["code_bytes"])
    assert np.array_equal(codes, expected)


@pytest.mark.parametrize("codec", ["raw-image", "raw-feature", "deepcod", "agilenn", "aecnn", "adjscc"])
@pytest.mark.parametrize("dsp", [False, True], ids=["plain-c", "dsp-path"])
def test_baselines_device_halves_equal_simulator(tmp_path, codec, dsp):
    """The baselines' tails: a channel selection, a local predictor's side bytes, raw pixels and features."""
    torch.manual_seed(0)
    task, model = build_models(TrainConfig(codec=codec), (28, 28, 1), 10)
    images = random_images(0, (28, 28, 1))
    graph = export_device_graph(task.eval(), model.eval(), images)
    symbols, expected = run_graph(graph, images)
    assert len(np.unique(symbols)) > 2
    assert np.array_equal(run_compiled(compile_model(graph, tmp_path, dsp), images, expected.shape[1]), expected)


def test_resnet_stem_exports_folded_batchnorm_and_max_pool():
    task, codec = random_models(1, base="resnet50", image_shape=(32, 32, 3))
    graph = export_device_graph(task, codec, random_images(1, (32, 32, 3)))
    ops = [layer["op"] for layer in graph["layers"]]
    assert ops[:3] == ["conv2d", "maxpool", "conv2d"] and graph["layers"][0]["act"] == "relu"
    assert graph["layers"][1]["out_shape"] == [8, 8, 64]


def test_folded_batchnorm_equals_conv_then_batchnorm():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5).eval()
    randomise_batchnorm(bn)
    w, b = fold_batchnorm(conv, bn)
    x = torch.randn(2, 3, 6, 6)
    folded = nn.functional.conv2d(x, torch.from_numpy(w), torch.from_numpy(b), padding=1)
    assert torch.allclose(folded, bn(conv(x)), atol=1e-5)


def test_int8_conv_matches_the_definition():
    """Per-channel shifts and a ReLU6 clamp, checked against the formula written out."""
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(2, 5, 6, 3), dtype=np.int8)
    w = rng.integers(-128, 128, size=(4, 3, 3, 3))
    b = rng.integers(-128, 128, size=4)
    bias_shift, out_shift = [2, 0, 3, 1], [7, 8, 6, 9]
    layer = {"kernel": [3, 3], "stride": [2, 1], "padding": [1, 1], "out_shape": [3, 6, 4], "weight": w.ravel().tolist(),
             "bias": b.tolist(), "bias_shift": bias_shift, "out_shift": out_shift, "act_min": 0, "act_max": 96}
    y = conv2d_s8(x, layer)
    xp = np.pad(x.astype(np.int64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    for n in range(2):
        for oy in range(3):
            for ox in range(6):
                for oc in range(4):
                    acc = (int(b[oc]) << bias_shift[oc]) + ((1 << out_shift[oc]) >> 1) \
                        + int((xp[n, 2 * oy:2 * oy + 3, ox:ox + 3, :] * w[oc]).sum())
                    assert y[n, oy, ox, oc] == min(96, max(0, min(127, max(-128, acc >> out_shift[oc]))))


def test_maxpool_ignores_padding():
    x = np.full((1, 2, 2, 1), -100, np.int8)
    y = maxpool_s8(x, {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "out_shape": [1, 1, 1]})
    assert y.item() == -100


def test_streamed_buffers_are_below_whole_tensor_memory():
    """Rows instead of tensors: the planned buffers of every case take well under the least memory
    any whole-tensor schedule needs, and no buffer holds a whole input or stem output."""
    for base, shape, crop in CASES:
        task, codec = random_models(0, crop, base, shape)
        graph = export_device_graph(task, codec, random_images(0, shape))
        p = plan(graph)
        assert p.arena_bytes < activation_lower_bound(graph) / 2, (base, p.buffers)
        biggest_tensor = max(int(np.prod(layer["out_shape"])) for layer in graph["layers"] if layer["op"] == "conv2d")
        assert max(b.bytes for b in p.buffers) < biggest_tensor


def test_dec_bits_follow_nnom():
    assert dec_bits(1.0) == 7 and dec_bits(0.9) == 7 and dec_bits(1.1) == 6 and dec_bits(0.2) == 9 and dec_bits(0.0) == 7


def test_layer_without_a_kernel_is_named_in_the_error():
    task, codec = random_models(0)
    task.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.Sigmoid())
    with pytest.raises(SemhilError, match=r"stem\.1 \(Sigmoid\).*supported stem layers are Conv2d"):
        export_device_graph(task, codec, np.zeros((4, 28, 28, 1), np.uint8))


def test_fake_quant_rounds_like_the_integer_kernels_and_passes_gradients():
    from codec_train.qformat import FakeQuant
    fq = FakeQuant()
    leaf = torch.tensor([0.5, 1.5, -0.5, -1.5, 300.0, -300.0], requires_grad=True)
    x = leaf / 4  # ties at dec 2, and saturation
    assert torch.equal(fq(x), x)  # off until its format is set
    fq.set_format(2)
    y = fq(x)
    assert y.tolist() == [0.25, 0.5, 0.0, -0.25, 127 / 4, -128 / 4]  # floor(v * 4 + 0.5) / 4, clamped to int8
    y.sum().backward()
    assert leaf.grad.tolist() == [0.25] * 6  # straight through: d(x)/d(leaf)


@pytest.mark.parametrize("base,image_shape", [("small", (28, 28, 1)), ("resnet50", (32, 32, 3))])
def test_rounded_stem_computes_the_int8_stem(base, image_shape):
    from codec_train.export import export_stem, round_stem_to_int8
    from codec_train.data import to_float
    from codec_train.simulate import run_layers
    task, codec = random_models(0, base=base, image_shape=image_shape)
    images = random_images(0, image_shape)
    layers, _ = export_stem(task, images)
    round_stem_to_int8(task, layers)
    dec = [layer for layer in layers if layer["op"] == "conv2d"][-1]["out_dec"]
    codec.encoder.input_quant.set_format(dec)
    with torch.no_grad():
        float_stem = codec.encoder.input_quant(task.stem(to_float(images))).permute(0, 2, 3, 1).numpy()
    int8_stem = run_layers(layers, (images >> 1).astype(np.int8))[0].astype(np.float32) * 2.0 ** -dec
    assert np.mean(float_stem == int8_stem) >= (1.0 if base == "small" else 0.999)


@pytest.mark.parametrize("backend", ["standalone", pytest.param("nnom", marks=needs_nnom)])
def test_model_larger_than_the_board_fails_at_build_time(tmp_path, backend):
    """A board with too little RAM for the arena: the build stops with a clear error, never a firmware."""
    from codec_train.data import load_dataset
    from codec_train.train import write_bundle
    from semhil.boards import load_board
    from semhil.build import build_firmware
    from semhil.paths import BOARDS_DIR
    text = (BOARDS_DIR / "qemu-stm32f405.toml").read_text()
    small = tmp_path / "small-ram.toml"
    small.write_text(text.replace('name = "qemu-stm32f405"', 'name = "small-ram"').replace("ram_bytes = 131072", "ram_bytes = 2048")
                     .replace("stack_bytes = 16384", "stack_bytes = 1024"))
    task, codec = random_models(0)
    bundle = write_bundle(tmp_path / "bundle", TrainConfig(), load_dataset("mnist5k"), task, codec, {})
    with pytest.raises(SemhilError, match=r"does not fit small-ram: needs [\d.]+ KB RAM .*board has 2.0 KB"):
        build_firmware(bundle, load_board(str(small)), backend)
    assert not (bundle.path / "build" / f"small-ram-{backend}" / "firmware.elf").exists()

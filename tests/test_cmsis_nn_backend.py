"""The cmsis-nn backend (a peer for measurements: the row pipeline with CMSIS-NN's s8 convolution),
compiled for this computer against the CMSIS_5 tree at CMSIS_HOME, gives the simulator's codes bit for
bit; compiled for Cortex-M4/M7, CMSIS-NN's DSP (SMLAD) path is in it."""
import os
import subprocess

import numpy as np
import pytest

from codec_train.simulate import run_graph
from semhil.backends import cmsis_nn, generate_model
from semhil.build import CPU_FLAGS, COMMON_FLAGS, _cmsis_includes, _cmsis_objects, cmsis_home
from semhil.errors import SemhilError
from semhil.paths import DEVICE_DIR
from test_standalone_kernels import CASES, HERE, random_case, random_images, run_compiled

needs_cmsis = pytest.mark.skipif(not os.environ.get("CMSIS_HOME"), reason="needs CMSIS_HOME (a CMSIS_5 tree at 5.9.0: make cmsis)")


def compile_cmsis_nn(graph: dict, tmp_path) -> object:
    home = cmsis_home()
    model_dir = generate_model(graph, "0123456789abcdef", tmp_path / "model", "cmsis-nn")
    peer = DEVICE_DIR / "peers" / "cmsis_nn"
    sources = [HERE / "kernel_driver.c", model_dir / "model.c", *(DEVICE_DIR / "kernels").glob("*.c"), *peer.glob("*.c")]
    includes = [f"-I{d}" for d in (model_dir, DEVICE_DIR / "kernels", DEVICE_DIR / "core", peer)] + _cmsis_includes(home)
    objects = _cmsis_objects("gcc", [], home, tmp_path / "cmsis")
    exe = tmp_path / "driver"
    subprocess.run(["gcc", *COMMON_FLAGS, *includes, *map(str, sources), *map(str, objects), "-o", str(exe), "-lm"], check=True)
    return exe


@needs_cmsis
@pytest.mark.parametrize("base,image_shape,crop_ratio", CASES)
def test_cmsis_nn_backend_equals_simulator(tmp_path, base, image_shape, crop_ratio):
    """The first case is the demo codec's device half (the small base at 28x28x1), the third the ResNet-50 stem."""
    graph, images, _, expected = random_case(base, image_shape, crop_ratio)
    exe = compile_cmsis_nn(graph, tmp_path)
    assert np.array_equal(run_compiled(exe, images, graph["code_bytes"]), expected)


def conv(name, in_shape, out_c, kernel, stride, padding, rng, out_shift, bias_shift, act=(-128, 127)):
    (ih, iw, ic), (kh, kw), (sh, sw), (ph, pw) = in_shape, kernel, stride, padding
    out_shape = [(ih + 2 * ph - kh) // sh + 1, (iw + 2 * pw - kw) // sw + 1, out_c]
    return {"op": "conv2d", "name": name, "in_shape": list(in_shape), "out_shape": out_shape, "kernel": list(kernel),
            "stride": list(stride), "padding": list(padding),
            "weight": rng.integers(-128, 128, out_c * kh * kw * ic).tolist(), "bias": rng.integers(-128, 128, out_c).tolist(),
            "bias_shift": list(bias_shift), "out_shift": list(out_shift), "act_min": act[0], "act_max": act[1]}


def raw_graph(shape, layers):
    """Convs (and max-pools) whose int8 output is the code itself: packed 8 bits a value."""
    n = int(np.prod(layers[-1]["out_shape"]))
    return {"format": 2, "input": {"shape": list(shape), "dec": 7}, "code_bytes": n, "side_bytes": 0,
            "layers": [*layers, {"op": "pack", "name": "packer", "bits": 8, "n_symbols": n, "code_bytes": n}]}


def pool(name, in_shape, kernel, stride, padding):
    (ih, iw, c), (kh, kw), (sh, sw), (ph, pw) = in_shape, kernel, stride, padding
    return {"op": "maxpool", "name": name, "in_shape": list(in_shape), "out_shape": [(ih + 2 * ph - kh) // sh + 1,
            (iw + 2 * pw - kw) // sw + 1, c], "kernel": list(kernel), "stride": list(stride), "padding": list(padding)}


def edge_graphs():
    """Every CMSIS-NN path (arm_convolve_s8, with an odd last column; 1 x n; the 1x1 fast path), every output
    shift 0..16, large biases and saturating sums, ReLU and ReLU6 clamps, a max-pool between convs."""
    rng = np.random.default_rng(1)
    shifts = list(range(17))
    odd = conv("odd_columns", (9, 11, 3), 17, (3, 3), (2, 1), (1, 1), rng, shifts, [s % 9 for s in shifts])
    a = conv("generic", (9, 12, 4), 17, (3, 3), (2, 1), (1, 1), rng, shifts[::-1], [s % 7 for s in shifts])
    b = conv("one_by_n", a["out_shape"], 8, (1, 3), (1, 1), (0, 1), rng, [0, 1, 2, 5, 9, 12, 14, 16], [0, 3, 6, 9, 2, 4, 7, 8],
             (0, 127))
    c = conv("one_by_one", b["out_shape"], 6, (1, 1), (1, 1), (0, 0), rng, [3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5], (0, 6))
    p = pool("pool", c["out_shape"], (2, 2), (2, 2), (0, 1))
    d = conv("blocks", p["out_shape"], 5, (2, 2), (2, 2), (0, 0), rng, [6] * 5, [4] * 5)
    return {"generic": raw_graph((9, 11, 3), [odd]), "chain": raw_graph((9, 12, 4), [a, b, c, p, d])}


@needs_cmsis
@pytest.mark.parametrize("name", ["generic", "chain"])
def test_cmsis_nn_requantisation_is_nnom_rounding(tmp_path, name):
    graph = edge_graphs()[name]
    images = random_images(2, graph["input"]["shape"])
    _, expected = run_graph(graph, images)
    assert {0, 255}.issubset(np.unique(expected)) or {0, 127}.issubset(np.unique(expected))  # saturated outputs too
    exe = compile_cmsis_nn(graph, tmp_path)
    assert np.array_equal(run_compiled(exe, images, graph["code_bytes"]), expected)


def test_requantisation_parameters():
    layer = {"name": "x", "kernel": [1, 1], "in_shape": [1, 1, 1], "bias": [1, -1, 0], "bias_shift": [0, 2, 0], "out_shift": [0, 1, 31]}
    assert cmsis_nn.requantisation(layer) == ([1 << 30, 1 << 30, 1], [1, 0, 0])
    assert cmsis_nn.bias32(layer) == [1, -4, 0]
    for bad in (-1, 32):
        with pytest.raises(SemhilError, match=f"layer x: output shift {bad}"):
            cmsis_nn.requantisation({**layer, "out_shift": [bad, 1, 1]})
    with pytest.raises(SemhilError, match="layer x: output shift 0 with sums that may reach 2\\^30"):
        cmsis_nn.requantisation({**layer, "bias": [64, 0, 0], "bias_shift": [24, 0, 0]})


def test_the_peer_plans_windows_and_its_buffers():
    graph = edge_graphs()["chain"]
    p = cmsis_nn.plan(graph)
    assert {s.kind for s in p.stages} == {"RP_CONV_WINDOW", "RP_MAXPOOL"}
    scratch = next(b for b in p.buffers if b.name == "conv_scratch")
    need = max(cmsis_nn.window_bytes(s.layer) + cmsis_nn.buffer_bytes(s.layer) for s in p.stages if s.layer["op"] == "conv2d")
    assert scratch.bytes >= need and p.arena_bytes >= scratch.bytes
    assert cmsis_nn.buffer_bytes(graph["layers"][2]) == 0  # the 1x1 fast path takes no buffer


def test_cmsis_home_missing_or_wrong_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv("CMSIS_HOME", raising=False)
    with pytest.raises(SemhilError, match="needs CMSIS-NN.*5.9.0.*make cmsis.*CMSIS_HOME"):
        cmsis_home()
    monkeypatch.setenv("CMSIS_HOME", str(tmp_path))
    with pytest.raises(SemhilError, match="is not a CMSIS_5 tree.*make cmsis"):
        cmsis_home()


def tree_state(folder) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@needs_cmsis
@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m7"])
def test_cortex_m_builds_take_cmsis_nn_dsp_path(tmp_path, core):
    """ARM_MATH_DSP comes from __ARM_FEATURE_DSP (arm_math_types.h): the inner loop must be SMLAD, built out of tree."""
    home = cmsis_home()
    before = tree_state(home / "CMSIS" / "NN")
    objects = _cmsis_objects("arm-none-eabi-gcc", CPU_FLAGS[core], home, tmp_path / core)
    kernel = next(o for o in objects if o.stem == "arm_nn_mat_mult_kernel_s8_s16")
    listing = subprocess.run(["arm-none-eabi-objdump", "-d", str(kernel)], capture_output=True, text=True, check=True).stdout
    assert listing.count("smlad") >= 8
    assert tree_state(home / "CMSIS" / "NN") == before

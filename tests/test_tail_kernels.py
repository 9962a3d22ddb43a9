"""The float tail's kernels, compiled for this computer: the threshold quantizer decides exactly as the
simulator's nearest-centre search, and the word-at-a-time packer writes the bits the definition says."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codec_train.simulate import quantize_f32
from semhil.backends.c_data import layer_data, quantizer_thresholds
from semhil.build import COMMON_FLAGS
from semhil.paths import DEVICE_DIR

HERE = Path(__file__).parent
KERNELS = DEVICE_DIR / "kernels"


def build_driver(tmp_path: Path, centres) -> Path:
    layer = {"op": "quantize", "name": "q", "shape": [1, 1, 1], "centres": [float(c) for c in centres]}
    (tmp_path / "quantizer.h").write_text('#include "kernels.h"\n' + "\n".join(layer_data(layer, "q")) + "\n")
    exe = tmp_path / "tail_driver"
    subprocess.run(["gcc", *COMMON_FLAGS, "-Wno-unused-const-variable", f"-I{tmp_path}", f"-I{KERNELS}", str(HERE / "tail_driver.c"),
                    str(KERNELS / "kernels.c"), "-o", str(exe), "-lm"], check=True)
    return exe


def floats_around(values, ulps: int = 64) -> np.ndarray:
    """Every float32 within `ulps` of each value."""
    bits = np.asarray(values, np.float32).view(np.int32)[:, None] + np.arange(-ulps, ulps + 1, dtype=np.int32)
    return bits.ravel().view(np.float32)


CENTRES = {
    "spread": np.linspace(-0.6, 0.9, 8),
    "unsorted, repeated": [0.5, -0.2, 0.1, 0.1, 0.9, -0.7, 0.3, 0.0],
    "close": [0.0, 1e-6, 2e-6, 1.0],
    "one": [0.25],
}


@pytest.mark.parametrize("name", CENTRES)
def test_threshold_quantizer_equals_the_search(tmp_path, name):
    centres = np.asarray(CENTRES[name], np.float32)
    thresholds, _, limit = quantizer_thresholds(centres)
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3e38, -3e38, limit, -limit], np.float32)
    x = np.concatenate([rng.normal(0, 1, 20000), rng.uniform(-1e7, 1e7, 2000), floats_around(thresholds), floats_around(centres),
                        floats_around([limit, -limit]), special]).astype(np.float32)
    exe = build_driver(tmp_path, centres)
    got = np.frombuffer(subprocess.run([str(exe), "quantize"], input=x.tobytes(), capture_output=True, check=True).stdout, np.uint8)
    expected = quantize_f32(x, {"centres": centres})
    wrong = np.flatnonzero(got != expected)
    assert wrong.size == 0, f"{wrong.size} symbols differ, e.g. x = {x[wrong[:5]]}: {got[wrong[:5]]} instead of {expected[wrong[:5]]}"


def test_thresholds_are_where_the_nearest_centre_changes():
    centres = np.float32([-1.0, 0.5, 2.0])
    thresholds, symbol_at, _ = quantizer_thresholds(centres)
    assert symbol_at == [0, 1, 2]
    for t, (a, b) in zip(thresholds, [(-1.0, 0.5), (0.5, 2.0)]):
        below = np.nextafter(np.float32(t), np.float32(-np.inf))
        assert abs(np.float32(t) - np.float32(b)) < abs(np.float32(t) - np.float32(a))
        assert abs(below - np.float32(b)) >= abs(below - np.float32(a))


def pack_reference(prefix_bits: list[int], symbols, bits: int) -> bytes:
    stream = prefix_bits + [(int(s) >> b) & 1 for s in symbols for b in range(bits - 1, -1, -1)]
    stream += [0] * (-len(stream) % 8)
    return bytes(int("".join(map(str, stream[i:i + 8])), 2) for i in range(0, len(stream), 8))


def test_packer_writes_the_bits_of_the_definition(tmp_path):
    exe = build_driver(tmp_path, [0.0])
    rng = np.random.default_rng(1)
    records, expected = b"", b""
    for bits in range(1, 9):
        for at in (0, 1, 7, 8, 13, 64):
            n = int(rng.integers(0, 40))
            symbols = rng.integers(0, 2 ** bits, n).astype(np.uint8)
            prefix = rng.integers(0, 2, at).tolist()
            head = pack_reference(prefix, [], 1)  # the bits before `at`, zero-padded to a byte
            records += np.uint32([n, bits, at]).tobytes() + head + symbols.tobytes()
            expected += pack_reference(prefix, symbols, bits)
    got = subprocess.run([str(exe), "pack"], input=records, capture_output=True, check=True).stdout
    assert got == expected

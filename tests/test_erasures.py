"""Filling the symbols a lost packet took (codec_train/erasures.py), and each codec's choice of fill."""
import numpy as np
import pytest
import torch

from codec_train.erasures import fill_for, fill_missing
from codec_train.train import TrainConfig, build_models
from semhil.errors import SemhilError

H = 8


def reference_fill(symbols: np.ndarray, missing: np.ndarray, zero_symbol: int) -> np.ndarray:
    """fill_missing(how="reflect") written out line by line, as its docstring says."""
    out = symbols.copy()
    n, height, width, channels = symbols.shape
    for i in range(n):
        for x in range(width):
            for c in range(channels):
                line, lost = symbols[i, :, x, c], missing[i, :, x, c]
                received = [j for j in range(height) if not lost[j]]
                for h in range(height):
                    if not lost[h]:
                        continue
                    a = h
                    while a > 0 and lost[a - 1]:
                        a -= 1
                    b = h + 1
                    while b < height and lost[b]:
                        b += 1
                    up, down = a - 1 - (h - a), b + (b - 1 - h)
                    if up >= 0 and not lost[up]:
                        out[i, h, x, c] = line[up]
                    elif down < height and not lost[down]:
                        out[i, h, x, c] = line[down]
                    elif received:
                        out[i, h, x, c] = line[min(received, key=lambda j: (abs(j - h), j))]
                    else:
                        out[i, h, x, c] = zero_symbol
    return out


def hand_made() -> tuple[np.ndarray, np.ndarray]:
    """One 8x4x2 map, symbol 10 * row + column + 100 * channel, with runs of missing rows at the top
    (column 0), in the middle (column 1), at the bottom (column 2), a run no reflection reaches
    (column 3) and a whole missing line (column 0, channel 1)."""
    rows, cols, chans = np.meshgrid(np.arange(H), np.arange(4), np.arange(2), indexing="ij")
    symbols = (10 * rows + cols + 100 * chans).astype(np.uint8)[None]
    missing = np.zeros_like(symbols, bool)
    missing[0, 0:2, 0, 0] = True   # top: rows 0, 1
    missing[0, 3:6, 1, 0] = True   # middle: rows 3, 4, 5
    missing[0, 5:8, 2, 0] = True   # bottom: rows 5, 6, 7
    missing[0, 1:8, 3, 0] = True   # only row 0 received
    missing[0, :, 0, 1] = True     # the whole line
    return symbols, missing


def test_reflect_fills_the_hand_made_map():
    symbols, missing = hand_made()
    filled = fill_missing(symbols, missing, "reflect", zero_symbol=7)
    line = lambda x, c: filled[0, :, x, c].tolist()  # noqa: E731
    assert line(0, 0) == [30, 20, 20, 30, 40, 50, 60, 70]      # top run [0, 2): nothing above, rows 3, 2 below
    assert line(1, 0) == [1, 11, 21, 21, 11, 1, 61, 71]        # middle run [3, 6): rows 2, 1, 0 above
    assert line(2, 0) == [2, 12, 22, 32, 42, 42, 32, 22]       # bottom run [5, 8): rows 4, 3, 2 above
    assert line(3, 0) == [3, 3, 3, 3, 3, 3, 3, 3]              # row 0, then past both reflections the nearest: row 0
    assert line(0, 1) == [7] * H                               # the whole line: zero_symbol
    assert np.array_equal(filled, reference_fill(symbols, missing, 7))


def test_reflect_of_a_bottom_run_mirrors_the_received_top_rows():
    """A run of missing rows to the bottom is the received top part padded by mirroring about its lower
    edge (the edge row repeated: numpy's "symmetric" padding), where that reaches."""
    rng = np.random.default_rng(0)
    symbols = rng.integers(0, 256, size=(3, H, 5, 2), dtype=np.uint8)
    for kept in range(1, H):
        missing = np.zeros_like(symbols, bool)
        missing[:, kept:] = True
        filled = fill_missing(symbols, missing, "reflect", 0)
        reach = min(kept, H - kept)
        padded = np.pad(symbols[:, :kept], ((0, 0), (0, reach), (0, 0), (0, 0)), mode="symmetric")
        assert np.array_equal(filled[:, :kept + reach], padded)
        for h in range(kept, H):  # the direct index check; past the reflection, the nearest received row
            assert np.array_equal(filled[:, h], symbols[:, 2 * kept - 1 - h] if 2 * kept - 1 - h >= 0 else symbols[:, kept - 1])


def test_zeros_fill_exactly_the_missing_ones():
    symbols, missing = hand_made()
    filled = fill_missing(symbols, missing, "zeros", zero_symbol=5)
    assert np.all(filled[missing] == 5) and np.array_equal(filled[~missing], symbols[~missing])
    assert filled is not symbols and np.array_equal(symbols, hand_made()[0])  # the input is left as it was


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("how", ["reflect", "zeros"])
def test_random_masks(seed, how):
    rng = np.random.default_rng(seed)
    shape = (4, int(rng.integers(1, 12)), int(rng.integers(1, 5)), int(rng.integers(1, 4)))
    symbols = rng.integers(0, 256, size=shape, dtype=np.uint8)
    density = [0.0, 0.1, 0.5, 0.9, 1.0, 0.3][seed]
    missing = rng.random(shape) < density
    if seed == 5:  # whole packets lost: runs of rows across every column and channel
        missing = np.broadcast_to(rng.random((4, shape[1], 1, 1)) < 0.4, shape).copy()
    before = symbols.copy()
    filled = fill_missing(symbols, missing, how, zero_symbol=200)
    assert filled.dtype == np.uint8 and filled.shape == shape
    assert np.array_equal(symbols, before)
    assert np.array_equal(filled[~missing], symbols[~missing])  # received symbols never change
    if how == "zeros":
        assert np.all(filled[missing] == 200)
        return
    assert np.array_equal(filled, reference_fill(symbols, missing, 200))
    whole_lines = missing.all(axis=1)  # (N, W, C): nothing received in the line
    for i, x, c in zip(*np.nonzero(missing.any(axis=1)), strict=True):
        values = filled[i, missing[i, :, x, c], x, c]
        allowed = {200} if whole_lines[i, x, c] else set(symbols[i, ~missing[i, :, x, c], x, c].tolist())
        assert set(values.tolist()) <= allowed


def test_bad_arguments_are_clear_errors():
    symbols, missing = hand_made()
    with pytest.raises(SemhilError, match="unknown fill"):
        fill_missing(symbols, missing, "nearest", 0)
    with pytest.raises(SemhilError, match="same shape"):
        fill_missing(symbols, missing[:, :4], "zeros", 0)
    with pytest.raises(SemhilError, match="bool mask"):
        fill_missing(symbols, missing.astype(np.uint8), "zeros", 0)
    with pytest.raises(SemhilError, match="not a symbol"):
        fill_missing(symbols, missing, "zeros", 256)


@pytest.mark.parametrize("codec,fill", [("semanticnn", "reflect"), ("deepcod", "reflect"), ("raw-image", "reflect"),
                                        ("raw-feature", "zeros"), ("adjscc", "reflect"), ("agilenn", "zeros"), ("aecnn", "zeros")])
def test_each_codec_chooses_its_fill(codec, fill):
    torch.manual_seed(0)
    _, model = build_models(TrainConfig(codec=codec), (28, 28, 1), 10)
    assert model.missing_fill == fill
    if codec in ("semanticnn", "adjscc", "deepcod", "aecnn", "agilenn"):
        quantizer = model.encoder.quantizer if codec in ("semanticnn", "adjscc") else model.quantizer
        n = quantizer.centres.numel()
        centres = torch.cat([torch.linspace(-1.0, -0.5, n // 2), torch.linspace(0.5, 1.0, n - n // 2)])
        centres[n // 2 - 1], centres[n // 2] = -0.2, 0.05
        with torch.no_grad():
            quantizer.centres.copy_(centres)
        assert model.zero_symbol == n // 2  # the centre nearest 0
        centres[n // 2] = 0.2
        with torch.no_grad():
            quantizer.centres.copy_(centres)
        assert model.zero_symbol == n // 2 - 1  # a tie: the first
    else:
        assert model.zero_symbol == 0
    symbols = np.full((1, 4, 4, 2), 9, np.uint8)
    missing = np.zeros_like(symbols, bool)
    missing[:, :, 1] = True  # one whole line per channel: no reflection reaches it
    assert np.all(fill_for(model, symbols, missing)[missing] == model.zero_symbol)

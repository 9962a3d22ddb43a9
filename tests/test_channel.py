import math

import numpy as np
import pytest

from semhil.channel import flip_bits_iid


@pytest.mark.parametrize("ber", [0.001, 0.01, 0.05])
def test_flip_rate_within_three_sigma(ber):
    payloads = np.zeros((1000, 125), np.uint8)  # 10^6 bits
    flipped = flip_bits_iid(payloads, ber, np.random.default_rng(7))
    n_bits = payloads.size * 8
    count = int(np.unpackbits(flipped).sum())
    sigma = math.sqrt(n_bits * ber * (1 - ber))
    assert abs(count - n_bits * ber) <= 3 * sigma


def test_zero_ber_changes_nothing_and_padding_is_left_alone():
    rng = np.random.default_rng(0)
    payloads = rng.integers(0, 256, size=(50, 147), dtype=np.uint8)
    assert np.array_equal(flip_bits_iid(payloads, 0.0, rng), payloads)
    flipped = flip_bits_iid(payloads, 1.0, rng, n_bits=147 * 8 - 4)
    assert np.array_equal(flipped[:, :-1], payloads[:, :-1] ^ 0xFF)
    assert np.array_equal(flipped[:, -1], payloads[:, -1] ^ 0xF0)


def test_same_seed_same_flips():
    payloads = np.zeros((10, 20), np.uint8)
    a = flip_bits_iid(payloads, 0.1, np.random.default_rng(3))
    b = flip_bits_iid(payloads, 0.1, np.random.default_rng(3))
    assert np.array_equal(a, b) and a.any()


def test_ber_out_of_range_is_refused():
    with pytest.raises(ValueError, match="BER"):
        flip_bits_iid(np.zeros((1, 1), np.uint8), 1.5, np.random.default_rng(0))

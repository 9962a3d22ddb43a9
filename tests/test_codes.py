import numpy as np
import pytest

from codec_train.codes import code_bytes, pack_symbols, unpack_symbols


def test_bit_order_is_msb_first_in_hwc_order():
    symbols = np.array([[1, 2, 3, 4, 5, 6, 7, 0]], np.uint8)
    # 001 010 011 100 101 110 111 000
    assert pack_symbols(symbols, 3).tolist() == [[0x29, 0xCB, 0xB8]]


@pytest.mark.parametrize("bits,shape", [(3, (7, 7, 8)), (3, (1, 1, 5)), (1, (2, 3, 1)), (8, (2, 2, 2))])
def test_pack_unpack_round_trip(bits, shape):
    rng = np.random.default_rng(1)
    symbols = rng.integers(0, 2 ** bits, size=(16, *shape), dtype=np.uint8)
    packed = pack_symbols(symbols, bits)
    assert packed.shape == (16, code_bytes(int(np.prod(shape)), bits))
    assert np.array_equal(unpack_symbols(packed, bits, shape), symbols)


def test_symbol_too_large_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        pack_symbols(np.array([[8]], np.uint8), 3)

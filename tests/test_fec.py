"""radio.fec: the Reed-Solomon layout is reedsolo's, the device's C encoder (device/core/ee_fec.c) gives the
Python encoder's bytes bit for bit, the interleaver spreads bursts, and the decoder corrects what the code
promises and says when it cannot."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import reedsolo

from radio.errors import RadioError
from radio.fec import FEC_SYNTAX, RS_BLOCK_BYTES, Fec, deinterleave, interleave, largest_message, parse_fec
from semhil.paths import DEVICE_DIR

HERE = Path(__file__).parent
CORE = DEVICE_DIR / "core"
C_FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"]
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    """tests/fec_driver.c with ee_fec.c, compiled for this computer."""
    out = tmp_path_factory.mktemp("fec") / "fec_driver"
    subprocess.run(["gcc", *C_FLAGS, f"-I{CORE}", str(HERE / "fec_driver.c"), str(CORE / "ee_fec.c"), "-o", str(out)],
                   check=True)
    return out


def c_encode(driver: Path, payloads: np.ndarray, nsym: int, depth: int) -> np.ndarray:
    n_messages, n = payloads.shape
    done = subprocess.run([str(driver), "encode", str(n), str(nsym), str(depth), str(n_messages)],
                          input=payloads.tobytes(), capture_output=True)
    assert done.returncode == 0, f"fec_driver encode {n} {nsym} {depth}: exit {done.returncode}"
    return np.frombuffer(done.stdout, np.uint8).reshape(n_messages, -1)


def c_interleave(driver: Path, bits: np.ndarray, depth: int) -> np.ndarray:
    """bits (n_bits,) bool in, ee_fec_interleave_bits' output bytes out."""
    done = subprocess.run([str(driver), "interleave", str(bits.size), str(depth)],
                          input=np.packbits(bits).tobytes(), capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.uint8)


def random_payloads(rng: np.random.Generator, n_messages: int, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n_messages, n), dtype=np.uint8)


# --- encoding ---

@pytest.mark.parametrize("nsym", [1, 2, 16, 33, 254])
def test_reed_solomon_layout_is_reedsolos(nsym):
    rng = np.random.default_rng(nsym)
    k = RS_BLOCK_BYTES - nsym
    fec = Fec(nsym)
    for n in sorted({0, 1, 10, k - 1, k, k + 1, 3 * k + 7, 600}):
        payloads = random_payloads(rng, 3, n)
        encoded = fec.encode(payloads)
        assert encoded.shape == (3, fec.encoded_bytes(n))
        for payload, sent in zip(payloads, encoded):
            assert sent.tobytes() == bytes(reedsolo.RSCodec(nsym).encode(payload.tobytes())), (nsym, n)


@pytest.mark.parametrize("nsym", [0, 1, 16, 33, 254])
def test_c_encoder_gives_the_python_bytes(driver, nsym):
    rng = np.random.default_rng(100 + nsym)
    for n in (0, 1, 7, 50, 239, 240, 300, 777):
        for depth in (1, 2, 3, 8, 13, 64, 5000):
            payloads = random_payloads(rng, 12, n)
            expected = Fec(nsym, depth).encode(payloads)
            assert np.array_equal(c_encode(driver, payloads, nsym, depth), expected), (n, nsym, depth)


def test_c_interleaves_any_number_of_bits(driver):
    rng = np.random.default_rng(7)
    for n_bits in [1, 7, 8, 9, *rng.integers(10, 400, 40)]:
        bits = rng.random(n_bits) < 0.5
        for depth in {1, 2, 3, int(rng.integers(1, n_bits + 4)), n_bits + 5}:
            expected = np.packbits(interleave(bits, depth))  # packbits pads with zero bits
            assert np.array_equal(c_interleave(driver, bits, depth), expected), (n_bits, depth)


# --- interleaver ---

def test_interleaver_reads_the_row_written_matrix_by_columns():
    """10 bits, 3 rows of 4 columns, the last row holding 2: read down the columns."""
    bits = np.arange(10)
    assert interleave(bits, 3).tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 3, 7]
    assert interleave(bits, 1).tolist() == list(range(10))
    assert interleave(bits, 10).tolist() == interleave(bits, 99).tolist() == list(range(10))


def test_deinterleave_undoes_interleave():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n_bits = int(rng.integers(0, 3000))
        depth = int(rng.integers(1, 80))
        bits = rng.random((2, n_bits)) < 0.5
        assert np.array_equal(deinterleave(interleave(bits, depth), depth), bits), (n_bits, depth)


@pytest.mark.parametrize("depth", [2, 8, 16, 32])
def test_a_burst_of_depth_bits_on_the_air_lands_in_depth_different_bytes(depth):
    """Every run of `depth` consecutive air bits comes from `depth` message bits at least columns - 1 apart,
    so in different bytes: the identity would put them side by side."""
    for n_bytes in (40, 64, 300):
        n_bits = 8 * n_bytes  # a multiple of every depth here: the matrix is full
        columns = n_bits // depth
        origin = interleave(np.arange(n_bits), depth)  # air bit j is message bit origin[j]
        for start in range(n_bits - depth + 1):
            burst = np.sort(origin[start:start + depth])
            assert np.diff(burst).min() >= columns - 1, (n_bytes, start)
            assert len(set(burst // 8)) == depth, (n_bytes, start)


def test_interleaving_spreads_a_lost_packet_over_the_reed_solomon_blocks():
    """40 lost bytes: in one block (16 parity bytes) they are too many; interleaved over 4 blocks, each recovers."""
    rng = np.random.default_rng(11)
    payloads = random_payloads(rng, 1, 4 * 239)
    for depth, all_recover in ((1, False), (4, True)):
        fec = Fec(16, depth)
        sent = fec.encode(payloads)
        for start in range(0, sent.shape[1] - 40, 37):
            erased = np.zeros(sent.shape, bool)
            erased[0, start:start + 40] = True
            received = np.where(erased, rng.integers(0, 256, sent.shape, dtype=np.uint8), sent)
            decoded = fec.decode(received, erased)
            assert decoded.block_ok.all() == all_recover, (depth, start)
            if all_recover:
                assert np.array_equal(decoded.payloads, payloads), start


# --- Reed-Solomon decoding ---

def corrupt(rng: np.random.Generator, fec: Fec, sent: np.ndarray, n: int, counts: np.ndarray,
            erasure_counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(received, erased): counts[i, b] byte errors (random nonzero XOR) and erasure_counts[i, b] erasures (random
    values) at distinct random positions of block b of message i; depth 1, so air bytes are codeword bytes."""
    erasure_counts = np.zeros_like(counts) if erasure_counts is None else erasure_counts
    received, erased = sent.copy(), np.zeros(sent.shape, bool)
    k = fec.block_data_bytes
    for i, b in np.ndindex(counts.shape):
        start = b * RS_BLOCK_BYTES
        length = min(k, n - b * k) + fec.rs_parity
        hit = start + rng.choice(length, counts[i, b] + erasure_counts[i, b], replace=False)
        errors, erasures = hit[:counts[i, b]], hit[counts[i, b]:]
        received[i, errors] ^= rng.integers(1, 256, errors.size, dtype=np.uint8)
        received[i, erasures] = rng.integers(0, 256, erasures.size, dtype=np.uint8)
        erased[i, erasures] = True
    return received, erased


@pytest.mark.parametrize("nsym", [2, 8, 16, 32])
def test_reed_solomon_corrects_up_to_half_its_parity_in_byte_errors(nsym):
    rng = np.random.default_rng(20 + nsym)
    fec = Fec(nsym)
    n = 2 * fec.block_data_bytes + 17  # two full blocks and a shortened one
    payloads = random_payloads(rng, 120, n)
    sent = fec.encode(payloads)
    counts = rng.integers(0, nsym // 2 + 1, (120, fec.n_blocks(n)))
    received, _ = corrupt(rng, fec, sent, n, counts)
    decoded = fec.decode(received)
    assert decoded.block_ok.all()
    assert np.array_equal(decoded.payloads, payloads)
    assert np.array_equal(decoded.corrected_bytes, counts.sum(axis=1))


@pytest.mark.parametrize("nsym", [16, 32])
def test_reed_solomon_reports_the_blocks_it_cannot_correct(nsym):
    """t + 1 .. nsym errors in a block: almost always reported, the block's data bytes left as received."""
    rng = np.random.default_rng(40 + nsym)
    fec = Fec(nsym)
    k = fec.block_data_bytes
    n = k + 60
    payloads = random_payloads(rng, 150, n)
    sent = fec.encode(payloads)
    counts = rng.integers(nsym // 2 + 1, nsym + 1, (150, fec.n_blocks(n)))
    received, _ = corrupt(rng, fec, sent, n, counts)
    decoded = fec.decode(received)
    assert (~decoded.block_ok).mean() >= 0.95
    as_received = np.concatenate([received[:, :k], received[:, RS_BLOCK_BYTES:RS_BLOCK_BYTES + 60]], axis=1)
    for block, data in ((0, slice(0, k)), (1, slice(k, n))):
        failed = ~decoded.block_ok[:, block]
        assert np.array_equal(decoded.payloads[failed, data], as_received[failed, data])
    assert (decoded.corrected_bytes[~decoded.block_ok.any(axis=1)] == 0).all()


@pytest.mark.parametrize("nsym", [8, 16])
def test_reed_solomon_recovers_erasures_and_errors_within_its_parity(nsym):
    """Up to nsym erasures per block, and any mix with 2 * errors + erasures <= nsym, decode exactly;
    more than nsym erasures are reported."""
    rng = np.random.default_rng(60 + nsym)
    fec = Fec(nsym)
    n = fec.block_data_bytes + 30
    payloads = random_payloads(rng, 100, n)
    sent = fec.encode(payloads)
    shape = (100, fec.n_blocks(n))

    erasures = rng.integers(1, nsym + 1, shape)
    decoded = fec.decode(*corrupt(rng, fec, sent, n, np.zeros(shape, np.int64), erasures))
    assert decoded.block_ok.all() and np.array_equal(decoded.payloads, payloads)

    errors = rng.integers(0, nsym // 2 + 1, shape)
    erasures = rng.integers(0, nsym - 2 * errors + 1)
    decoded = fec.decode(*corrupt(rng, fec, sent, n, errors, erasures))
    assert decoded.block_ok.all() and np.array_equal(decoded.payloads, payloads)

    too_many = np.full(shape, nsym + 1)
    decoded = fec.decode(*corrupt(rng, fec, sent, n, np.zeros(shape, np.int64), too_many))
    assert not decoded.block_ok.any()


def test_interleaved_reed_solomon_round_trip_with_erasures_and_errors():
    """Erasures go through the deinterleaver: an erased air byte erases every RS byte it holds bits of."""
    rng = np.random.default_rng(5)
    fec = Fec(16, interleave_depth=8)
    payloads = random_payloads(rng, 50, 300)
    sent = fec.encode(payloads)
    erased = np.zeros(sent.shape, bool)
    erased[:, 100:101] = True  # its 8 bits go to 8 rows: up to 8 RS bytes erased
    received = np.where(erased, 0, sent)
    received[:, 200] ^= 0x01  # one bit: one RS byte wrong
    decoded = fec.decode(received, erased)
    assert decoded.block_ok.all() and np.array_equal(decoded.payloads, payloads)
    assert (decoded.corrected_bytes >= 1).all()


def test_without_reed_solomon_decode_only_deinterleaves():
    rng = np.random.default_rng(8)
    fec = Fec(0, 5)
    payloads = random_payloads(rng, 4, 33)
    sent = fec.encode(payloads)
    assert not np.array_equal(sent, payloads)
    decoded = fec.decode(sent, np.ones(sent.shape, bool))
    assert np.array_equal(decoded.payloads, payloads)
    assert decoded.block_ok.shape == (4, 0) and (decoded.corrected_bytes == 0).all()


def test_decode_refuses_a_length_no_message_encodes_to():
    with pytest.raises(ValueError, match="no length"):
        Fec(16).decode(np.zeros((1, 255 + 16), np.uint8))


# --- sizes ---

@pytest.mark.parametrize("fec", [Fec(), Fec(1), Fec(16, 8), Fec(254)])
def test_sizes(fec):
    for n in range(0, 1200):
        assert fec.message_bytes(fec.encoded_bytes(n)) == n
    for budget in range(0, 1200):
        largest = largest_message(fec, budget)
        assert fec.encoded_bytes(largest) <= budget < fec.encoded_bytes(largest + 1), budget


# --- the C side ---

def test_c_has_no_writable_static_data(tmp_path):
    """The MicroPython native module's linker cannot place writable statics."""
    obj = tmp_path / "ee_fec.o"
    subprocess.run(["gcc", *C_FLAGS, "-c", str(CORE / "ee_fec.c"), "-o", str(obj)], check=True)
    symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    writable = [line for line in symbols.splitlines() if line.split()[-2] in "bBdDC"]
    assert not writable


def test_arm_compile_is_clean_and_stack_is_bounded(tmp_path):
    """make test installs arm-none-eabi-gcc: without it this fails rather than skips."""
    obj = tmp_path / "ee_fec.o"
    subprocess.run(["arm-none-eabi-gcc", *ARM_FLAGS, *C_FLAGS, "-fstack-usage", "-c", str(CORE / "ee_fec.c"),
                    "-o", str(obj)], check=True)
    frames = [line.split("\t") for line in obj.with_suffix(".su").read_text().splitlines()]
    assert all(kind == "static" for _, _, kind in frames)
    bound = int(re.search(r"#define EE_FEC_MAX_STACK_BYTES (\d+)u", (CORE / "ee_fec.h").read_text())[1])
    memcpy_memset_allowance = 32
    assert sum(int(size) for _, size, _ in frames) + memcpy_memset_allowance <= bound  # no recursion: all frames at once


# --- parsing ---

@pytest.mark.parametrize("spec, fec", [
    ("none", Fec()), ("rs:16", Fec(16)), ("rs:16,interleave=8", Fec(16, 8)), ("interleave=8", Fec(0, 8)),
    (" RS:1 , Interleave=3 ", Fec(1, 3)), ("interleave=8,rs:254", Fec(254, 8)), ("rs:16,interleave=1", Fec(16)),
])
def test_parse_fec(spec, fec):
    assert parse_fec(spec) == fec
    assert parse_fec(fec.spec) == fec
    assert fec.describe()["fec"] == fec.spec


@pytest.mark.parametrize("spec, problem", [
    ("", "empty"), ("rs", "'rs' is not a setting"), ("rs:", "not a whole number"), ("rs:x", "'x' is not a whole"),
    ("rs:0", "within 1..254, got 0"), ("rs:255", "within 1..254, got 255"), ("rs:-2", "got -2"),
    ("interleave=0", "at least 1, got 0"), ("interleave=a", "not a whole number"), ("interleave", "not a setting"),
    ("rs:16,rs:8", "repeats"), ("none,rs:16", "'none' goes alone"), ("conv:7", "not a setting"),
    ("rs:16,depth=8", "'depth=8' is not a setting"), ("rs:16,", "empty"), ("rs:1.5", "not a whole number"),
])
def test_parse_fec_refuses_mistakes(spec, problem):
    with pytest.raises(RadioError) as raised:
        parse_fec(spec)
    message = str(raised.value)
    assert problem in message and FEC_SYNTAX in message and f"'{spec}'" in message and "\n" not in message


def test_fec_refuses_impossible_settings():
    with pytest.raises(ValueError, match="parity"):
        Fec(255)
    with pytest.raises(ValueError, match="depth"):
        Fec(16, 0)

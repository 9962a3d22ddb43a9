import json
import math
import time

import numpy as np
import pytest

from radio.channel import (DynamicBerChannel, GilbertElliottChannel, IidChannel, TraceChannel, apply_channel,
                            bpsk_ber, flip_bits_iid, parse_channel)
from radio.errors import RadioError


def run_lengths(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lengths of the runs of True, lengths of the runs of False) in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(bits.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges])
    lengths = np.diff(np.concatenate([starts, [bits.size]]))
    values = bits[starts]
    return lengths[values], lengths[~values]


def some_channels(tmp_path):
    trace = tmp_path / "bers.txt"
    trace.write_text("0.01\n0.2\n0\n")
    return [IidChannel(0.1), GilbertElliottChannel.from_mean(0.05, 4), DynamicBerChannel(0.0, 0.3),
            TraceChannel.from_file(trace)]


# i.i.d.

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


def test_iid_tells_its_ber():
    flips, ber = IidChannel(0.02).sample(7, 30, np.random.default_rng(0))
    assert flips.shape == (7, 30) and flips.dtype == bool
    assert ber.dtype == np.float64 and np.array_equal(ber, np.full(7, 0.02))


# Every model through apply_channel

def test_apply_channel_leaves_padding_alone_for_every_model(tmp_path):
    payloads = np.random.default_rng(1).integers(0, 256, size=(200, 10), dtype=np.uint8)
    for channel in some_channels(tmp_path):
        received, ber = apply_channel(payloads, channel, np.random.default_rng(2), n_bits=75)
        assert np.array_equal(received[:, -1] & 0x1F, payloads[:, -1] & 0x1F), channel.name
        assert (received != payloads).any(), channel.name
        assert ber.shape == (200,) and ber.dtype == np.float64, channel.name


def test_apply_channel_flips_msb_first():
    class FirstBitOnly:
        name = "first-bit"

        def describe(self):
            return {"name": self.name}

        def sample(self, n_frames, n_bits, rng):
            flips = np.zeros((n_frames, n_bits), bool)
            flips[:, 0] = True
            return flips, np.zeros(n_frames)

    received, _ = apply_channel(np.zeros((2, 3), np.uint8), FirstBitOnly(), np.random.default_rng(0))
    assert np.array_equal(received, [[0x80, 0, 0], [0x80, 0, 0]])


def test_same_seed_same_output_for_every_model(tmp_path):
    payloads = np.zeros((50, 16), np.uint8)
    for channel in some_channels(tmp_path):
        a = apply_channel(payloads, channel, np.random.default_rng(5))
        b = apply_channel(payloads, channel, np.random.default_rng(5))
        c = apply_channel(payloads, channel, np.random.default_rng(6))
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), channel.name
        assert not np.array_equal(a[0], c[0]), channel.name


def test_describe_is_json_and_names_the_model(tmp_path):
    names = []
    for channel in some_channels(tmp_path):
        described = json.loads(json.dumps(channel.describe()))
        assert described["name"] == channel.name
        names.append(channel.name)
    assert names == ["iid", "gilbert-elliott", "dynamic", "trace"]


# Gilbert-Elliott

def test_gilbert_elliott_mean_ber_within_batch_means_bound():
    channel = GilbertElliottChannel.from_mean(0.01, 8)
    flips, ber = channel.sample(2000, 1000, np.random.default_rng(11))
    assert np.all(ber == channel.mean_ber)
    # Flips are correlated over a few hundred bits; means of 20,000-bit batches are nearly independent.
    batch_means = flips.reshape(100, -1).mean(axis=1)
    standard_error = batch_means.std(ddof=1) / math.sqrt(len(batch_means))
    assert standard_error < 0.1 * channel.mean_ber
    assert abs(flips.mean() - channel.mean_ber) <= 4 * standard_error


@pytest.mark.parametrize("burst", [1.0, 3.0, 8.0, 40.0])
def test_gilbert_elliott_burst_and_gap_lengths(burst):
    # With ber_bad = 1 and ber_good = 0 the flips are the bad states.
    channel = GilbertElliottChannel.from_mean(0.05, burst, ber_bad=1.0)
    flips, _ = channel.sample(2000, 1000, np.random.default_rng(12))
    bursts, gaps = run_lengths(flips.ravel())
    assert bursts.mean() == pytest.approx(channel.mean_burst_length, rel=0.05)
    assert gaps.mean() == pytest.approx(1 / channel.p_good_to_bad, rel=0.05)
    states = channel.sample_states(10 ** 6, np.random.default_rng(13))
    assert run_lengths(states)[0].mean() == pytest.approx(channel.mean_burst_length, rel=0.05)


def test_gilbert_elliott_state_carries_over_frame_boundaries():
    channel = GilbertElliottChannel(0.01, 0.01, ber_good=0.0, ber_bad=1.0)
    flips, _ = channel.sample(20000, 4, np.random.default_rng(14))
    last_bad, next_bad = flips[:-1, -1], flips[1:, 0]
    # Independent frames would give 0.5 here.
    assert next_bad[last_bad].mean() > 0.95
    assert (~next_bad[~last_bad]).mean() > 0.95


def test_gilbert_elliott_first_state_is_stationary():
    channel = GilbertElliottChannel(0.3, 0.7, ber_good=0.0, ber_bad=1.0)
    rng = np.random.default_rng(15)
    first = np.array([channel.sample(1, 1, rng)[0][0, 0] for _ in range(4000)])
    sigma = math.sqrt(0.3 * 0.7 / len(first))
    assert abs(first.mean() - channel.bad_fraction) <= 4 * sigma


def test_gilbert_elliott_from_mean_round_trips():
    channel = GilbertElliottChannel.from_mean(0.01, 8, ber_bad=0.3)
    assert channel.mean_ber == pytest.approx(0.01)
    assert channel.mean_burst_length == pytest.approx(8)
    assert (channel.ber_good, channel.ber_bad) == (0.0, 0.3)
    again = GilbertElliottChannel.from_mean(channel.mean_ber, channel.mean_burst_length, channel.ber_bad)
    assert again.p_good_to_bad == pytest.approx(channel.p_good_to_bad)
    assert again.p_bad_to_good == pytest.approx(channel.p_bad_to_good)


def test_gilbert_elliott_zero_ber_never_enters_the_bad_state():
    channel = GilbertElliottChannel.from_mean(0.0, 8)
    assert not channel.sample(100, 100, np.random.default_rng(0))[0].any()


@pytest.mark.parametrize("ber, burst, ber_bad", [(0.5, 8, 0.5), (0.01, 0.5, 0.5), (0.01, math.inf, 0.5),
                                                 (0.45, 1.0, 0.5), (-0.01, 8, 0.5)])
def test_gilbert_elliott_from_mean_refuses_impossible_parameters(ber, burst, ber_bad):
    with pytest.raises(ValueError):
        GilbertElliottChannel.from_mean(ber, burst, ber_bad)


def test_gilbert_elliott_million_bits_well_under_a_second():
    channel = GilbertElliottChannel(1.0, 1.0)  # a new run every bit: the most runs to fill
    start = time.perf_counter()
    channel.sample(1000, 1000, np.random.default_rng(0))
    assert time.perf_counter() - start < 0.5


# Dynamic BER

def test_dynamic_told_bers_are_uniform_in_range():
    channel = DynamicBerChannel(0.0001, 0.05)
    _, ber = channel.sample(20000, 1, np.random.default_rng(21))
    assert ber.min() >= 0.0001 and ber.max() <= 0.05
    counts, _ = np.histogram(ber, bins=10, range=(0.0001, 0.05))
    expected = len(ber) / 10
    assert np.all(np.abs(counts - expected) <= 5 * math.sqrt(expected * 0.9))


def test_dynamic_flip_counts_follow_told_bers():
    flips, ber = DynamicBerChannel(0.0001, 0.05).sample(1000, 1000, np.random.default_rng(22))
    counts = flips.sum(axis=1)
    assert np.corrcoef(counts, ber)[0, 1] > 0.9
    sigma = math.sqrt(np.sum(1000 * ber * (1 - ber)))
    assert abs(counts.sum() - 1000 * ber.sum()) <= 4 * sigma


# Trace

def test_trace_from_file_skips_comments_and_cycles(tmp_path):
    path = tmp_path / "bers.txt"
    path.write_text("# measured on the bench\n0.0\n\n0.5  # a deep fade\n   \n0.01\n")
    channel = TraceChannel.from_file(path)
    assert channel.bers == (0.0, 0.5, 0.01) and channel.source == str(path)
    flips, ber = channel.sample(7, 2000, np.random.default_rng(31))
    assert np.array_equal(ber, [0.0, 0.5, 0.01, 0.0, 0.5, 0.01, 0.0])
    assert not flips[ber == 0.0].any()
    assert np.all(np.abs(flips[ber == 0.5].mean(axis=1) - 0.5) < 0.05)


def test_trace_restarts_each_sample_call():
    channel = TraceChannel((0.1, 0.2, 0.3), "test")
    rng = np.random.default_rng(0)
    assert np.array_equal(channel.sample(2, 1, rng)[1], [0.1, 0.2])
    assert np.array_equal(channel.sample(2, 1, rng)[1], [0.1, 0.2])


@pytest.mark.parametrize("text, problem", [("", "no BERs"), ("# only a comment\n\n", "no BERs"),
                                           ("0.01\nlots\n", "line 2: 'lots' is not a number"),
                                           ("0.01\n0.7\n", r"line 2: BER 0.7 is not within \[0, 0.5\]")])
def test_trace_from_file_refuses_bad_files(tmp_path, text, problem):
    path = tmp_path / "bers.txt"
    path.write_text(text)
    with pytest.raises(RadioError, match=problem):
        TraceChannel.from_file(path)


def test_trace_from_file_refuses_a_missing_file(tmp_path):
    with pytest.raises(RadioError, match="cannot read BER trace"):
        TraceChannel.from_file(tmp_path / "missing.txt")


# BPSK

@pytest.mark.parametrize("snr_db, ber", [(0, 0.0786496), (6, 0.00238829), (10, 3.87211e-6)])
def test_bpsk_ber_known_values(snr_db, ber):
    assert bpsk_ber(snr_db) == pytest.approx(ber, rel=1e-4)


# parse_channel

def test_parse_channel_valid_specs(tmp_path):
    path = tmp_path / "bers.txt"
    path.write_text("0.01\n0.02\n")
    assert parse_channel("iid:0.01") == IidChannel(0.01)
    assert parse_channel("ge:0.01,8") == GilbertElliottChannel.from_mean(0.01, 8)
    assert parse_channel("ge:0.01,8,0.25") == GilbertElliottChannel.from_mean(0.01, 8, 0.25)
    assert parse_channel("dynamic:0.0001,0.05") == DynamicBerChannel(0.0001, 0.05)
    assert parse_channel(f"trace:{path}") == TraceChannel((0.01, 0.02), str(path))
    bpsk = parse_channel("bpsk-snr:6")
    assert bpsk.ber == pytest.approx(bpsk_ber(6)) and bpsk.describe()["snr_db"] == 6.0


@pytest.mark.parametrize("spec, problem", [
    ("awgn:0.01", "unknown channel"),
    ("iid", "no parameters given"),
    ("iid:", "no parameters given"),
    ("iid:abc", "'abc' is not a number"),
    ("iid:0.01,0.02", "needs 1 comma-separated value"),
    ("iid:0.7", r"BER 0.7 is not within \[0, 0.5\]"),
    ("iid:-0.1", r"BER -0.1 is not within \[0, 0.5\]"),
    ("iid:nan", "BER nan is not within"),
    ("ge:0.01", "needs 2 or 3 comma-separated value"),
    ("ge:0.01,0.5", "mean burst length must be at least 1 bit"),
    ("ge:0.6,8", "mean BER 0.6 is not within"),
    ("ge:0.01,8,0.9", "bad-state BER 0.9 is not within"),
    ("ge:0.2,8,0.1", r"mean BER must be within \[0, ber_bad"),
    ("dynamic:0.01", "needs 2 comma-separated value"),
    ("dynamic:0.05,0.01", "lowest BER 0.05 is above highest BER 0.01"),
    ("dynamic:0.01,0.6", "highest BER 0.6 is not within"),
    ("bpsk-snr:inf", "not finite"),
    ("trace:", "no parameters given"),
])
def test_parse_channel_malformed_specs(spec, problem):
    with pytest.raises(RadioError, match=problem) as raised:
        parse_channel(spec)
    message = str(raised.value)
    assert "\n" not in message
    assert ("expected iid:<ber>" in message if spec.startswith("iid") else "expected" in message)


def test_parse_channel_bad_trace_file(tmp_path):
    with pytest.raises(RadioError, match="cannot read BER trace"):
        parse_channel(f"trace:{tmp_path / 'missing.txt'}")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(RadioError, match="no BERs"):
        parse_channel(f"trace:{tmp_path / 'empty.txt'}")
    (tmp_path / "words.txt").write_text("0.01\nhigh\n")
    with pytest.raises(RadioError, match="line 2"):
        parse_channel(f"trace:{tmp_path / 'words.txt'}")

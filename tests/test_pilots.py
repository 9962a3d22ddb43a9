"""Pilot-based BER estimation at the receiver: the radio frame, the estimator, the decoder fed with it."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from rich.progress import Progress

from codec_train.data import load_dataset
from codec_train.edge import predict_from_payloads, predict_through_channel
from codec_train.simulate import run_graph
from codec_train.train import PRESETS, train_bundle
from radio.channel import DynamicBerChannel, GilbertElliottChannel, IidChannel, apply_channel
from radio.errors import RadioError
from radio.pilots import Pilots, estimate_ber, parse_pilots, pilot_mask, send_with_pilots
from semhil import cli_codec  # noqa: F401 - registers eval
from semhil.cli import cli
from semhil.scoring import score


def random_payloads(n_frames: int, n_bytes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n_frames, n_bytes), dtype=np.uint8)


def data_bit_errors(sent: np.ndarray, received: np.ndarray, n_bits: int) -> np.ndarray:
    """bool (N, n_bits): which data bits arrived wrong."""
    return np.unpackbits(sent ^ received, axis=-1)[:, :n_bits].astype(bool)


class RecordingChannel:
    """An i.i.d. channel that keeps the flips it drew."""
    name = "recording"

    def __init__(self, ber: float):
        self.inner = IidChannel(ber)

    def describe(self):
        return {"name": self.name}

    def sample(self, n_frames, n_bits, rng):
        self.flips, ber = self.inner.sample(n_frames, n_bits, rng)
        return self.flips, ber


# The radio frame

@pytest.mark.parametrize("n_data, n_pilots", [(1176, 64), (75, 128), (0, 8), (10, 10)])
def test_pilots_are_spread_evenly_through_the_frame(n_data, n_pilots):
    mask = pilot_mask(n_data, n_pilots)
    positions = np.flatnonzero(mask)
    spacing = (n_data + n_pilots) / n_pilots
    assert mask.size == n_data + n_pilots and positions.size == n_pilots
    assert np.all(np.abs(positions - (np.arange(n_pilots) + 0.5) * spacing) < 1)


def test_no_errors_gives_the_data_back_and_the_prior_estimate():
    payloads = random_payloads(40, 10)
    received, estimate, channel_ber = send_with_pilots(payloads, IidChannel(0.0), np.random.default_rng(0), 75, Pilots(32))
    assert np.array_equal(received, payloads)
    assert np.all(estimate == estimate[0]) and 0.0 < estimate[0] < 1 / 32
    assert np.array_equal(channel_ber, np.zeros(40))


def test_every_bit_flipped_inverts_the_data_and_leaves_the_padding():
    payloads = random_payloads(40, 10)
    received, estimate, _ = send_with_pilots(payloads, IidChannel(1.0), np.random.default_rng(0), 75, Pilots(16))
    assert np.array_equal(received[:, :-1], payloads[:, :-1] ^ 0xFF)
    assert np.array_equal(received[:, -1], payloads[:, -1] ^ 0xE0)  # 75 = 9 bytes + 3 bits
    assert np.all(estimate == 0.5)


@pytest.mark.parametrize("n_bits", [75, 1, 80])
def test_data_bits_take_exactly_the_flips_of_their_frame_positions(n_bits):
    payloads = random_payloads(30, 10)
    channel, pilots = RecordingChannel(0.2), Pilots(24)
    received, estimate, _ = send_with_pilots(payloads, channel, np.random.default_rng(5), n_bits, pilots)
    is_pilot = pilot_mask(n_bits, pilots.n_bits)
    assert channel.flips.shape == (30, n_bits + 24)
    assert np.array_equal(data_bit_errors(payloads, received, 80), np.pad(channel.flips[:, ~is_pilot], ((0, 0), (0, 80 - n_bits))))
    assert np.array_equal(estimate, estimate_ber(channel.flips[:, is_pilot].sum(axis=1), pilots.n_bits))


def test_send_with_pilots_refuses_more_data_bits_than_the_payload_has():
    with pytest.raises(ValueError, match="n_bits"):
        send_with_pilots(random_payloads(2, 3), IidChannel(0.1), np.random.default_rng(0), 25, Pilots(8))


# The estimator

@pytest.mark.parametrize("ber", [0.01, 0.05])
def test_mean_estimate_is_the_true_ber_within_a_few_standard_errors(ber):
    n_frames, n_pilots = 3000, 128
    payloads = random_payloads(n_frames, 16)
    estimates = {window: send_with_pilots(payloads, IidChannel(ber), np.random.default_rng(1), None, Pilots(n_pilots, window))[1]
                 for window in (1, 64)}
    # Per frame: the Jeffreys posterior mean, expected (n ber + 1/2) / (n + 1).
    standard_error = math.sqrt(n_pilots * ber * (1 - ber)) / (n_pilots + 1) / math.sqrt(n_frames)
    expected = (n_pilots * ber + 0.5) / (n_pilots + 1)
    assert abs(estimates[1].mean() - expected) <= 4 * standard_error
    # Pooled over 64 frames the prior's pull is negligible: the mean estimate is the true BER.
    pooled_standard_error = math.sqrt(ber * (1 - ber) / (n_frames * n_pilots))
    assert abs(estimates[64][64:].mean() - ber) <= 4 * pooled_standard_error + 0.5 / (64 * n_pilots)
    assert estimates[64][64:].std() < estimates[1].std() / 4


def test_window_looks_back_only_and_starts_short():
    errors = np.array([0, 4, 0, 0, 8])
    estimate = estimate_ber(errors, 16, window=2)
    assert estimate[0] == estimate_ber([0], 16)[0]
    assert estimate[1] == estimate_ber([4], 32)[0]
    assert estimate[3] == estimate_ber([0], 32)[0]
    assert estimate[4] == estimate_ber([8], 32)[0]


def test_per_frame_estimate_follows_a_dynamic_ber():
    payloads = random_payloads(2000, 16)
    _, estimate, channel_ber = send_with_pilots(payloads, DynamicBerChannel(0.0001, 0.1), np.random.default_rng(2), None, Pilots(128))
    assert np.corrcoef(estimate, channel_ber)[0, 1] >= 0.75
    assert np.sqrt(np.mean((estimate - channel_ber) ** 2)) < channel_ber.std()


def test_interleaved_pilots_see_the_bursts_that_hit_the_data():
    payloads = random_payloads(2000, 147)
    received, estimate, _ = send_with_pilots(payloads, GilbertElliottChannel.from_mean(0.01, 64), np.random.default_rng(3), None, Pilots(64))
    frame_data_ber = data_bit_errors(payloads, received, 147 * 8).mean(axis=1)
    assert np.corrcoef(estimate, frame_data_ber)[0, 1] >= 0.8


# Command-line form

def test_parse_pilots():
    assert parse_pilots("64") == Pilots(64, 1)
    assert parse_pilots(" 64 , window = 16 ") == Pilots(64, 16)


@pytest.mark.parametrize("spec, message", [
    ("", "no pilot bit count"),
    ("abc", "'abc' is not a whole number"),
    ("0", "at least 1"),
    ("-3", "at least 1"),
    ("64,window=0", "window must be at least 1"),
    ("64,window=x", "window 'x'"),
    ("64,size=3", "unknown option 'size=3'"),
    ("64,16", "unknown option '16'"),
    ("64,window=2,window=3", "more than one option"),
])
def test_parse_pilots_errors(spec, message):
    with pytest.raises(RadioError, match=message) as info:
        parse_pilots(spec)
    assert "expected <pilot bits per frame>[,window=<frames>]" in str(info.value)


# The decoder told the estimate

SHORT_TINY = dataclasses.replace(PRESETS["tiny"], task_epochs=2, stage1_epochs=1, stage2_epochs=2)  # ~90 % accurate


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny bundle with its int8 codes of the first 500 test images."""
    data = load_dataset("mnist5k")
    with Progress(disable=True) as progress:
        bundle = train_bundle(SHORT_TINY, tmp_path_factory.mktemp("pilots") / "tiny", progress, data)
    task, codec = bundle.load_models()
    images, labels = data.x_test[:500], data.y_test[:500]
    return bundle, task, codec, images, labels, run_graph(bundle.graph, images)[1]


def test_without_pilots_predictions_are_as_before(trained):
    _, task, codec, _, _, payloads = trained
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits
    for channel in (IidChannel(0.05), DynamicBerChannel(0.0, 0.1)):
        received, ber = apply_channel(payloads, channel, np.random.default_rng(9), n_bits=n_bits)
        assert np.array_equal(predict_through_channel(task, codec, payloads, channel, 9)[0], predict_from_payloads(task, codec, received, ber))


def test_decoder_told_the_estimate_is_as_accurate_as_told_the_ber(trained):
    _, task, codec, _, labels, payloads = trained
    channel, pilots = IidChannel(0.01), Pilots(128)
    told = (predict_through_channel(task, codec, payloads, channel, 4)[0] == labels).mean()
    estimated = (predict_through_channel(task, codec, payloads, channel, 4, pilots)[0] == labels).mean()
    assert told > 0.8
    assert abs(estimated - told) <= 0.02


def test_score_rows_say_where_the_ber_came_from(trained):
    bundle, _, _, images, labels, payloads = trained
    channels = [IidChannel(0.0), IidChannel(0.05)]
    plain, _ = score(bundle, images, labels, payloads, channels, 0)
    assert [row["ber_source"] for row in plain] == ["channel", "channel"] and "ber_estimate_mean" not in plain[0]
    with_pilots, _ = score(bundle, images, labels, payloads, channels, 0, Pilots(64, window=8))
    for row in with_pilots:
        assert row["ber_source"] == "pilots" and row["pilot_bits"] == 64 and row["pilot_window"] == 8
    assert with_pilots[0]["ber_estimate_mean"] < 0.01 and abs(with_pilots[1]["ber_estimate_mean"] - 0.05) < 0.01
    assert abs(with_pilots[0]["accuracy"] - plain[0]["accuracy"]) <= 0.01


def test_eval_command_takes_pilots(trained, tmp_path):
    bundle = trained[0]
    out = tmp_path / "eval.json"
    done = CliRunner().invoke(cli, ["eval", str(bundle.path), "--ber", "0.01", "--pilots", "32,window=4", "--json", str(out)])
    assert done.exit_code == 0, done.output
    (row,) = json.loads(out.read_text())["results"]
    assert row["ber_source"] == "pilots" and row["pilot_bits"] == 32 and row["pilot_window"] == 4
    done = CliRunner().invoke(cli, ["eval", str(bundle.path), "--pilots", "0"])
    assert isinstance(done.exception, RadioError) and "pilots '0'" in str(done.exception)

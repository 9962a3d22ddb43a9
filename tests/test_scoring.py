"""Scoring at scale: the fast scoring path gives what the straightforward one gave (every pipeline decoded
in full with the 1x1-convolution GDN, each channel drawn in one go), whatever the chunk sizes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from codec_train import edge, train
from codec_train.codecs import CODECS
from codec_train.codes import pack_symbols, unpack_symbols
from codec_train.data import load_dataset, to_float
from codec_train.edge import predict_from_payloads, transmit
from codec_train.layers import GDN
from codec_train.simulate import run_graph
from codec_train.train import PRESETS, build_models
from radio.channel import DynamicBerChannel, GilbertElliottChannel, IidChannel, apply_channel
from radio.pilots import Pilots, send_with_pilots
from semhil.scoring import evaluate_bundle, score

CHANNELS = [IidChannel(0.0), IidChannel(0.01), IidChannel(0.1), DynamicBerChannel(0.0, 0.05),
            GilbertElliottChannel.from_mean(0.02, 8)]


def conv2d_gdn(self, x: torch.Tensor) -> torch.Tensor:
    """GDN as it was written before the speed-up."""
    c = x.shape[1]
    norm = F.conv2d(x * x, self.gamma().view(c, c, 1, 1), self.beta())
    return x * torch.sqrt(norm) if self.inverse else x / torch.sqrt(norm)


def send_in_one_draw(codec, payloads, channel, seed, pilots=None):
    """The whole batch through the channel in one draw."""
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits
    rng = np.random.default_rng(seed)
    if pilots is None:
        return apply_channel(payloads, channel, rng, n_bits=n_bits)
    received, ber, _ = send_with_pilots(payloads, channel, rng, n_bits, pilots)
    return received, ber


@torch.no_grad()
def decode_in_full(task, codec, received, ber):
    symbols = torch.from_numpy(unpack_symbols(received, codec.shape.bits, codec.shape.sent_shape))
    side = torch.from_numpy(np.ascontiguousarray(received[:, codec.shape.bytes_per_image:]))
    bers = torch.from_numpy(np.broadcast_to(np.asarray(ber, np.float32), (len(received),)).copy())
    return torch.cat([codec.logits(task, symbols[i:i + 256], bers[i:i + 256], side[i:i + 256]).argmax(1)
                      for i in range(0, len(symbols), 256)]).numpy()


@torch.no_grad()
def float_payloads_in_one_go(task, codec, images):
    symbols = torch.cat([codec.float_symbols(task, images[i:i + 256]) for i in range(0, len(images), 256)]).numpy()
    return np.concatenate([pack_symbols(symbols.astype(np.uint8), codec.shape.bits), codec.float_side(task, images)], axis=1)


def reference_score(bundle, images, labels, payloads, channels, seed, pilots=None):
    """The straightforward way: both pipelines through their own channel draw, decoded in full."""
    task, codec = bundle.load_models()
    reference = float_payloads_in_one_go(task, codec, images)
    rows = []
    for k, channel in enumerate(channels):
        accuracies = []
        for sent in (payloads, reference):
            received, ber = send_in_one_draw(codec, sent, channel, seed + k, pilots)
            accuracies.append(float((decode_in_full(task, codec, received, ber) == labels).mean()))
        rows.append({"accuracy": accuracies[0], "float_accuracy": accuracies[1]})
    with torch.no_grad():
        task_accuracy = float((task(to_float(images)).argmax(1).numpy() == labels).mean())
    return rows, task_accuracy


def assert_same_scores(rows, task_accuracy, expected_rows, expected_task_accuracy):
    assert len(rows) == len(expected_rows)
    for row, expected in zip(rows, expected_rows, strict=True):
        assert abs(row["accuracy"] - expected["accuracy"]) <= 0.001, (row, expected)
        assert abs(row["float_accuracy"] - expected["float_accuracy"]) <= 0.001, (row, expected)
    assert abs(task_accuracy - expected_task_accuracy) <= 0.001


@pytest.fixture(scope="module")
def test_split(bundle):
    """The tiny bundle, the 1,000 mnist5k test images, their labels and int8 codes."""
    data = load_dataset("mnist5k")
    return bundle, data.x_test, data.y_test, run_graph(bundle.graph, data.x_test)[1]


def old_way(monkeypatch, bundle, images, labels, payloads, channels, seed, pilots=None):
    """reference_score with GDN as it was."""
    with monkeypatch.context() as patch:
        patch.setattr(GDN, "forward", conv2d_gdn)
        return reference_score(bundle, images, labels, payloads, channels, seed, pilots)


def test_evaluate_bundle_scores_as_the_straightforward_way(test_split, monkeypatch):
    bundle, images, labels, payloads = test_split
    result = evaluate_bundle(bundle, None, CHANNELS, use_float=False, seed=3)
    assert_same_scores(result["results"], result["task_accuracy"],
                       *old_way(monkeypatch, bundle, images, labels, payloads, CHANNELS, 3))


def test_score_with_pilots_as_the_straightforward_way(test_split, monkeypatch):
    bundle, images, labels, payloads = test_split
    channels, pilots = [IidChannel(0.0), IidChannel(0.05)], Pilots(64, window=8)
    rows, task_accuracy = score(bundle, images, labels, payloads, channels, 5, pilots)
    assert_same_scores(rows, task_accuracy, *old_way(monkeypatch, bundle, images, labels, payloads, channels, 5, pilots))


def test_float_half_is_scored_on_its_own_codes_where_they_differ(test_split, monkeypatch):
    """Codes that differ from the float half's for every other image: the float accuracy must not follow them."""
    bundle, images, labels, payloads = test_split
    damaged = payloads.copy()
    code_bytes = bundle.graph["code_bytes"]
    damaged[::2, :code_bytes] = np.random.default_rng(0).integers(0, 256, (len(damaged[::2]), code_bytes))
    channels = [IidChannel(0.0), IidChannel(0.01)]
    rows, task_accuracy = score(bundle, images, labels, damaged, channels, 0)
    expected_rows, expected_task_accuracy = old_way(monkeypatch, bundle, images, labels, damaged, channels, 0)
    assert_same_scores(rows, task_accuracy, expected_rows, expected_task_accuracy)
    assert rows[0]["float_accuracy"] - rows[0]["accuracy"] > 0.05


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.name + str(c.describe().get("ber", "")))
@pytest.mark.parametrize("pilots", [None, Pilots(32, window=4)], ids=["told", "pilots"])
def test_received_payloads_are_those_of_one_draw(test_split, channel, pilots, monkeypatch):
    """transmit (drawn in chunks) receives what one draw does; and other payloads sent with the same seed
    get the same flips and told BER, which is what lets score reuse the int8 flips for the float half."""
    bundle, _, _, payloads = test_split
    codec = bundle.load_models()[1]
    monkeypatch.setattr(edge, "CHANNEL_CHUNK", 96)
    received, ber = transmit(codec, payloads, channel, 11, pilots)
    expected_received, expected_ber = send_in_one_draw(codec, payloads, channel, 11, pilots)
    assert np.array_equal(received, expected_received) and np.array_equal(ber, expected_ber)
    others = payloads[::-1]
    others_received, others_ber = send_in_one_draw(codec, others, channel, 11, pilots)
    assert np.array_equal(others ^ (received ^ payloads), others_received) and np.array_equal(others_ber, ber)


# The GDN

@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gdn_equals_the_convolution_formula_forward_and_backward(inverse, channels_last):
    torch.manual_seed(0)
    gdn = GDN(6, inverse)
    with torch.no_grad():
        gdn.beta_raw.add_(torch.rand(6))
        gdn.gamma_raw.add_(torch.rand(6, 6) * 0.2)
    x = torch.randn(3, 6, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    outputs, grads = [], []
    for forward in (GDN.forward, conv2d_gdn):
        gdn.zero_grad()
        xx = x.clone().requires_grad_()
        y = forward(gdn, xx)
        (y * torch.linspace(-1, 1, y.numel()).view(y.shape)).sum().backward()
        outputs.append(y.detach())
        grads.append([xx.grad, gdn.beta_raw.grad.clone(), gdn.gamma_raw.grad.clone()])
    assert torch.allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
    for fast, slow in zip(*grads, strict=True):
        assert fast.abs().sum() > 0 and torch.allclose(fast, slow, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("codec_name", list(CODECS))
def test_every_codec_decodes_alike_in_the_edge_layout(codec_name):
    """edge_models (channels-last copies) give the logits the models give as they are, for every codec."""
    torch.manual_seed(0)
    task, codec = build_models(dataclasses.replace(PRESETS["tiny"], codec=codec_name), (28, 28, 1), 10)
    task.eval()
    codec.eval()
    n = 16
    symbols = torch.randint(0, 2 ** codec.shape.bits, (n, *codec.shape.sent_shape), dtype=torch.uint8)
    side = torch.from_numpy(np.random.default_rng(0).standard_normal((n, codec.side_bytes // 4), np.float32).view(np.uint8))
    ber = torch.full((n,), 0.01)
    with torch.no_grad():
        expected = codec.logits(task, symbols, ber, side)
        edge_task, edge_codec = edge.edge_models(task, codec)
        assert torch.allclose(edge_codec.logits(edge_task, symbols, ber, side), expected, rtol=1e-4, atol=1e-5)


def test_gdn_keeps_its_state_dict_keys():
    assert set(GDN(4).state_dict()) == {name for name, _ in GDN(4).named_parameters()} == {"beta_raw", "gamma_raw"}


# Chunks

def test_int8_simulator_does_not_depend_on_the_chunk(test_split):
    bundle, images, _, _ = test_split
    symbols, payloads = run_graph(bundle.graph, images[:200])
    small_symbols, small_payloads = run_graph(bundle.graph, images[:200], chunk=7)
    assert np.array_equal(symbols, small_symbols) and np.array_equal(payloads, small_payloads)


def test_int8_simulator_memory_does_not_grow_with_the_images(test_split):
    import tracemalloc
    bundle, images, _, _ = test_split

    def peak(n):
        tracemalloc.start()
        run_graph(bundle.graph, np.resize(images, (n, *images.shape[1:])), chunk=64)
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    output_bytes = 2 * (bundle.graph["code_bytes"] + int(np.prod(run_graph(bundle.graph, images[:1])[0].shape)))
    assert peak(1024) - peak(256) < 768 * output_bytes + images[:768].nbytes + (1 << 20)


def test_decoding_does_not_depend_on_the_batch(test_split, monkeypatch):
    bundle, _, _, payloads = test_split
    task, codec = bundle.load_models()
    received, ber = transmit(codec, payloads[:300], IidChannel(0.05), 2)
    preds = predict_from_payloads(task, codec, received, ber)
    monkeypatch.setattr(edge, "DECODE_BATCH", 5)
    assert np.array_equal(predict_from_payloads(task, codec, received, ber), preds)


def test_float_half_does_not_depend_on_the_batch(test_split, monkeypatch):
    bundle, images, _, _ = test_split
    task, codec = bundle.load_models()
    payloads = train.float_payloads(task, codec, images[:200])
    monkeypatch.setattr(train, "FLOAT_BATCH", 7)
    assert np.array_equal(train.float_payloads(task, codec, images[:200]), payloads)


def test_scoring_does_not_depend_on_the_chunks(test_split, monkeypatch):
    bundle, images, labels, payloads = test_split
    images, labels, payloads = images[:300], labels[:300], payloads[:300]
    channels = [IidChannel(0.05), DynamicBerChannel(0.0, 0.1)]
    rows, _ = score(bundle, images, labels, payloads, channels, 1)
    monkeypatch.setattr(edge, "CHANNEL_CHUNK", 13)
    monkeypatch.setattr(edge, "DECODE_BATCH", 9)
    monkeypatch.setattr(train, "FLOAT_BATCH", 11)
    assert score(bundle, images, labels, payloads, channels, 1)[0] == rows

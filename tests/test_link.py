import json
import math

import numpy as np
import pytest

from radio.channel import GilbertElliottChannel, IidChannel, TraceChannel
from radio.errors import RadioError
from radio.link import LINK_SYNTAX, RADIOS, Link, Radio, parse_link, send


def random_messages(n_images: int, n_bytes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n_images, n_bytes), dtype=np.uint8)


def packet_lost(delivery, link: Link, n_bytes: int) -> np.ndarray:
    """(N, n_packets) bool, from the byte erasure mask at each packet's first byte."""
    starts = np.cumsum([0] + link.packet_sizes(n_bytes)[:-1])
    return delivery.lost[:, starts]


def assert_within_three_sigma(count: float, expected: float, variance: float):
    assert abs(count - expected) <= 3 * math.sqrt(variance) + 1e-9, (count, expected, math.sqrt(variance))


# Presets: figures straight from the standards (sync = preamble + sync word + PHY header).

STANDARD_FIGURES = {
    # name: (sync, header, crc, max payload)
    "ble": (1 + 4, 2, 3, 251),
    "802.15.4": (4 + 1 + 1, 2 + 1 + 2 + 2 + 2, 2, 127 - 9 - 2),
    "lora": (11 + 3, 1 + 7 + 1 + 4, 2, 222),
}


@pytest.mark.parametrize("name", sorted(STANDARD_FIGURES))
def test_preset_overhead_and_payload(name):
    sync, header, crc, payload = STANDARD_FIGURES[name]
    radio = RADIOS[name]
    assert radio.name == name
    assert (radio.sync_bytes, radio.header_bytes, radio.crc_bytes, radio.max_payload_bytes) == (sync, header, crc, payload)
    assert radio.overhead_bytes == sync + header + crc


def test_preset_rates_and_ack_timeouts():
    assert RADIOS["ble"].bit_rate == 1e6 and math.isclose(RADIOS["ble"].ack_timeout_s, 150e-6 + 80e-6 + 150e-6)
    assert RADIOS["802.15.4"].bit_rate == 250e3 and math.isclose(RADIOS["802.15.4"].ack_timeout_s, 54 * 16e-6)
    assert RADIOS["lora"].bit_rate == 5469 and RADIOS["lora"].ack_timeout_s == 1.0


@pytest.mark.parametrize("name", sorted(STANDARD_FIGURES))
def test_packet_sizes_and_air_bytes_at_the_boundary(name):
    link = Link(RADIOS[name])
    payload, overhead = RADIOS[name].max_payload_bytes, RADIOS[name].overhead_bytes
    assert link.packet_sizes(0) == [] and link.air_bytes(0) == 0
    assert link.packet_sizes(1) == [1] and link.air_bytes(1) == 1 + overhead
    assert link.packet_sizes(payload) == [payload] and link.air_bytes(payload) == payload + overhead
    assert link.packet_sizes(payload + 1) == [payload, 1] and link.air_bytes(payload + 1) == payload + 1 + 2 * overhead
    assert link.packet_sizes(3 * payload + 7) == [payload] * 3 + [7]
    assert link.air_bytes(3 * payload + 7) == 3 * payload + 7 + 4 * overhead


def test_ble_boundary_in_numbers():
    link = Link(RADIOS["ble"])
    assert link.packet_sizes(251) == [251] and link.packet_sizes(252) == [251, 1]
    assert link.air_bytes(251) == 261 and link.air_bytes(252) == 272
    assert link.largest_message(261) == 251 and link.largest_message(271) == 251 and link.largest_message(272) == 252


@pytest.mark.parametrize("radio", [*RADIOS.values(), Radio("custom", 3, 1, 0, 1, 1e3, 0.0)], ids=lambda r: r.name)
def test_largest_message_is_the_inverse_of_air_bytes(radio):
    link = Link(radio)
    for budget in range(-3, 4 * (radio.max_payload_bytes + radio.overhead_bytes) + 5):
        n = link.largest_message(budget)
        assert n >= 0
        assert n == 0 or link.air_bytes(n) <= budget
        assert link.air_bytes(n + 1) > budget
    for n in range(0, 3 * radio.max_payload_bytes + 3):
        assert link.largest_message(link.air_bytes(n)) == n


def test_describe_is_json_able():
    described = json.loads(json.dumps(parse_link("lora,crc-off,arq=2,loss=0.1").describe()))
    assert described["radio"]["name"] == "lora" and described["radio"]["overhead_bytes"] == 29
    assert described["crc"] is False and described["max_retransmissions"] == 2 and described["packet_loss"] == 0.1


# CRC on: a packet with any bit error is dropped.

def expected_drops(drop_probability_per_packet: np.ndarray, n_images: int) -> tuple[float, float]:
    """(mean, variance) of the number of dropped packets, independent packets."""
    p = drop_probability_per_packet
    return n_images * float(p.sum()), n_images * float((p * (1 - p)).sum())


@pytest.mark.parametrize("name", ["ble", "802.15.4"])
@pytest.mark.parametrize("ber", [1e-4, 1e-3, 1e-2])
def test_crc_drop_rate_matches_whole_packet_bits(name, ber):
    link = Link(RADIOS[name])
    n_images, n_bytes = 1500, RADIOS[name].max_payload_bytes + 12  # one full and one short packet
    delivery = send(random_messages(n_images, n_bytes), link, IidChannel(ber), np.random.default_rng(1))
    packet_bits = (np.array(link.packet_sizes(n_bytes)) + link.radio.overhead_bytes) * 8
    mean, variance = expected_drops(1 - (1 - ber) ** packet_bits, n_images)
    assert_within_three_sigma(delivery.packets_lost.sum(), mean, variance)
    assert math.isclose(delivery.packet_loss_rate, delivery.packets_lost.sum() / (2 * n_images))


def test_crc_on_delivers_exact_bytes_and_zeros_for_lost_ones():
    link = Link(RADIOS["802.15.4"])
    sent = random_messages(800, 300)
    delivery = send(sent, link, IidChannel(1e-3), np.random.default_rng(2))
    assert 0 < delivery.lost.mean() < 1
    assert np.array_equal(delivery.received[~delivery.lost], sent[~delivery.lost])
    assert not delivery.received[delivery.lost].any()
    lost_packets = packet_lost(delivery, link, 300)
    assert np.array_equal(delivery.packets_lost, lost_packets.sum(axis=1))
    assert np.array_equal(delivery.lost, np.repeat(lost_packets, link.packet_sizes(300), axis=1))


# CRC off: only sync/header errors drop a packet; payload errors reach the decoder.

@pytest.mark.parametrize("name", ["ble", "lora"])
@pytest.mark.parametrize("ber", [1e-3, 1e-2])
def test_crc_off_drops_on_header_errors_and_passes_payload_errors(name, ber):
    link = Link(RADIOS[name], crc=False)
    n_images, n_bytes = 1500, 40
    sent = random_messages(n_images, n_bytes)
    delivery = send(sent, link, IidChannel(ber), np.random.default_rng(3))
    p_drop = 1 - (1 - ber) ** link.radio.head_bits
    assert_within_three_sigma(delivery.packets_lost.sum(), n_images * p_drop, n_images * p_drop * (1 - p_drop))

    arrived = ~delivery.lost
    bit_errors = int(np.unpackbits(delivery.received[arrived] ^ sent[arrived]).sum())
    n_bits = int(arrived.sum()) * 8
    assert_within_three_sigma(bit_errors, n_bits * ber, n_bits * ber * (1 - ber))
    assert not delivery.received[delivery.lost].any()


def test_crc_off_ignores_crc_bit_errors():
    # A radio that is all CRC but for the payload: with the CRC off nothing can be lost.
    link = Link(Radio("crc-only", 4, 0, 0, 32, 1e3, 0.0), crc=False)
    delivery = send(random_messages(500, 4), link, IidChannel(0.2), np.random.default_rng(4))
    assert not delivery.lost.any() and (delivery.attempts == 1).all()
    assert send(random_messages(500, 4), Link(link.radio), IidChannel(0.2), np.random.default_rng(4)).lost.all()


# Extra i.i.d. packet loss.

@pytest.mark.parametrize("crc", [True, False])
def test_packet_loss_alone_matches_p(crc):
    p, n_images, n_bytes = 0.2, 2000, 600
    link = Link(RADIOS["ble"], crc=crc, packet_loss=p)
    delivery = send(random_messages(n_images, n_bytes), link, IidChannel(0.0), np.random.default_rng(5))
    n_packets = n_images * len(link.packet_sizes(n_bytes))
    assert_within_three_sigma(delivery.packets_lost.sum(), n_packets * p, n_packets * p * (1 - p))
    assert np.array_equal(delivery.received[~delivery.lost], random_messages(n_images, n_bytes)[~delivery.lost])


@pytest.mark.parametrize("arq", [0, 2])
def test_packet_loss_one_loses_everything(arq):
    link = Link(RADIOS["lora"], packet_loss=1.0, max_retransmissions=arq)
    delivery = send(random_messages(7, 500), link, IidChannel(0.0), np.random.default_rng(6))
    n_packets = len(link.packet_sizes(500))
    assert delivery.lost.all() and not delivery.received.any()
    assert (delivery.attempts == arq + 1).all() and (delivery.packets_lost == n_packets).all()
    assert delivery.packet_loss_rate == 1.0
    assert (delivery.air_bytes == (arq + 1) * link.air_bytes(500)).all()


# ARQ.

@pytest.mark.parametrize("name", sorted(RADIOS))
def test_clean_channel_sends_each_packet_once(name):
    link = Link(RADIOS[name], max_retransmissions=3)
    sent = random_messages(20, 1000)
    delivery = send(sent, link, IidChannel(0.0), np.random.default_rng(7))
    assert (delivery.attempts == 1).all() and not delivery.lost.any()
    assert np.array_equal(delivery.received, sent)
    assert (delivery.air_bytes == link.air_bytes(1000)).all()
    assert np.allclose(delivery.airtime_s, link.air_bytes(1000) * 8 / link.radio.bit_rate)


def attempts_distribution(p: float, arq: int) -> tuple[np.ndarray, np.ndarray]:
    """(attempt counts 1..arq+1, their probabilities) for a packet lost i.i.d. with probability p per try."""
    counts = np.arange(1, arq + 2)
    probabilities = np.append(p ** (counts[:-1] - 1) * (1 - p), p ** arq)
    return counts, probabilities


@pytest.mark.parametrize("p, arq", [(0.3, 2), (0.5, 4), (0.1, 1)])
def test_arq_attempts_and_residual_loss(p, arq):
    link = Link(RADIOS["802.15.4"], packet_loss=p, max_retransmissions=arq)
    n_images, n_bytes = 2000, 300
    delivery = send(random_messages(n_images, n_bytes), link, IidChannel(0.0), np.random.default_rng(8))
    n_packets = delivery.attempts.size

    counts, probabilities = attempts_distribution(p, arq)
    mean = float((counts * probabilities).sum())
    assert math.isclose(mean, (1 - p ** (arq + 1)) / (1 - p))
    variance = float((counts ** 2 * probabilities).sum()) - mean ** 2
    assert_within_three_sigma(delivery.attempts.sum(), n_packets * mean, n_packets * variance)

    residual = p ** (arq + 1)
    assert_within_three_sigma(delivery.packets_lost.sum(), n_packets * residual, n_packets * residual * (1 - residual))
    assert np.array_equal(delivery.packets_lost > 0, delivery.lost.any(axis=1))


@pytest.mark.parametrize("crc", [True, False])
@pytest.mark.parametrize("name", sorted(RADIOS))
def test_arq_air_bytes_and_airtime_add_up(name, crc):
    link = Link(RADIOS[name], crc=crc, packet_loss=0.2, max_retransmissions=3)
    n_bytes = 2 * RADIOS[name].max_payload_bytes + 5
    delivery = send(random_messages(300, n_bytes), link, IidChannel(1e-3), np.random.default_rng(9))
    assert (delivery.attempts > 1).any()
    packet_air_bytes = np.array(link.packet_sizes(n_bytes)) + link.radio.overhead_bytes
    expected_air = (delivery.attempts * packet_air_bytes).sum(axis=1)
    assert np.array_equal(delivery.air_bytes, expected_air)
    retransmissions = (delivery.attempts - 1).sum(axis=1)
    expected_airtime = expected_air * 8 / link.radio.bit_rate + retransmissions * link.radio.ack_timeout_s
    assert np.allclose(delivery.airtime_s, expected_airtime, rtol=1e-12, atol=0)


def test_arq_retransmits_packets_the_channel_dropped():
    ber, arq = 1e-3, 2
    link = Link(RADIOS["ble"], max_retransmissions=arq)
    n_images, n_bytes = 3000, 40
    delivery = send(random_messages(n_images, n_bytes), link, IidChannel(ber), np.random.default_rng(10))
    residual = (1 - (1 - ber) ** ((n_bytes + link.radio.overhead_bytes) * 8)) ** (arq + 1)
    assert_within_three_sigma(delivery.packets_lost.sum(), n_images * residual, n_images * residual * (1 - residual))


def test_lost_packets_used_every_attempt():
    link = Link(RADIOS["ble"], packet_loss=0.4, max_retransmissions=2)
    delivery = send(random_messages(1000, 600), link, IidChannel(0.0), np.random.default_rng(11))
    lost = packet_lost(delivery, link, 600)
    assert lost.any()
    assert (delivery.attempts[lost] == 3).all()


# Bursts and the BER told.

def test_gilbert_elliott_bursts_drop_consecutive_packets():
    link = Link(RADIOS["802.15.4"])
    n_bytes = 5 * link.radio.max_payload_bytes
    channel = GilbertElliottChannel.from_mean(0.02, 2000)
    delivery = send(random_messages(400, n_bytes), link, channel, np.random.default_rng(12))
    lost = packet_lost(delivery, link, n_bytes)
    unconditional = lost.mean()
    after_a_loss = (lost[:, :-1] & lost[:, 1:]).sum() / lost[:, :-1].sum()
    assert 0 < unconditional < 0.5
    assert after_a_loss > 2 * unconditional


def test_ber_is_the_mean_of_what_the_channel_told_per_packet(tmp_path):
    trace = tmp_path / "bers.txt"
    trace.write_text("0\n0.1\n0.3\n")
    link = Link(RADIOS["802.15.4"], packet_loss=0.5, max_retransmissions=3)
    delivery = send(random_messages(4, 200), link, TraceChannel.from_file(trace), np.random.default_rng(13))
    told = np.resize([0.0, 0.1, 0.3], 8).reshape(4, 2)  # two packets per image, one trace line each
    assert np.allclose(delivery.ber, told.mean(axis=1))
    assert delivery.ber.dtype == np.float64


# Edge cases.

def test_empty_messages_and_no_images():
    link = Link(RADIOS["ble"], packet_loss=0.5, max_retransmissions=2)
    empty = send(np.zeros((5, 0), np.uint8), link, IidChannel(0.01), np.random.default_rng(14))
    assert empty.received.shape == empty.lost.shape == (5, 0) and empty.attempts.shape == (5, 0)
    assert (empty.air_bytes == 0).all() and (empty.airtime_s == 0).all() and (empty.packets_lost == 0).all()
    assert np.allclose(empty.ber, 0.01) and empty.packet_loss_rate == 0.0

    none = send(np.zeros((0, 300), np.uint8), link, IidChannel(0.01), np.random.default_rng(14))
    assert none.received.shape == (0, 300) and none.attempts.shape == (0, 2)
    assert none.air_bytes.shape == none.airtime_s.shape == none.ber.shape == (0,)


def test_send_is_reproducible_from_the_seed():
    link = Link(RADIOS["ble"], crc=False, packet_loss=0.1, max_retransmissions=1)
    sent = random_messages(50, 400)
    first, second = (send(sent, link, IidChannel(0.01), np.random.default_rng(15)) for _ in range(2))
    assert np.array_equal(first.received, second.received) and np.array_equal(first.attempts, second.attempts)


def test_send_rejects_non_byte_payloads():
    with pytest.raises(ValueError, match="uint8"):
        send(np.zeros((2, 3), np.int32), Link(RADIOS["ble"]), IidChannel(0.0), np.random.default_rng(0))


# parse_link.

CUSTOM = Radio("custom", 64, 4, 2, 2, 250000.0, 0.0)


@pytest.mark.parametrize("spec, expected", [
    ("ble", Link(RADIOS["ble"])),
    ("BLE", Link(RADIOS["ble"])),
    ("802.15.4,crc-off", Link(RADIOS["802.15.4"], crc=False)),
    ("lora,arq=3", Link(RADIOS["lora"], max_retransmissions=3)),
    ("ble,loss=0.05", Link(RADIOS["ble"], packet_loss=0.05)),
    (" lora , crc-on , loss=1 , arq=0 ", Link(RADIOS["lora"], packet_loss=1.0)),
    ("payload=64,sync=4,header=2,crc=2,rate=250000", Link(CUSTOM)),
    ("rate=250000,payload=64,sync=4,header=2,crc=2,crc-off,arq=1",
     Link(CUSTOM, crc=False, max_retransmissions=1)),
    ("payload=64,rate=1e6,ack=0.002", Link(Radio("custom", 64, 0, 0, 0, 1e6, 0.002))),
])
def test_parse_link_good_specs(spec, expected):
    assert parse_link(spec) == expected


@pytest.mark.parametrize("spec, problem", [
    ("", "no radio given"),
    ("wifi", "unknown radio 'wifi'"),
    ("ble,fast", "unknown option 'fast'"),
    ("ble,crc", "unknown option 'crc'"),
    ("ble,arq=two", "arq='two' is not a whole number"),
    ("ble,arq=1.5", "arq='1.5' is not a whole number"),
    ("ble,loss=lots", "loss='lots' is not a number"),
    ("ble,loss=nan", "not finite"),
    ("ble,loss=1.5", "packet loss 1.5 is not within [0, 1]"),
    ("ble,loss=-0.1", "packet loss -0.1 is not within [0, 1]"),
    ("ble,arq=-1", "must not be negative"),
    ("ble,arq=1,arq=2", "'arq=' given twice"),
    ("ble,crc-off,crc-on", "CRC mode given twice"),
    ("ble,payload=27", "cannot follow the preset 'ble'"),
    ("sync=4,header=2,rate=1e6", "needs payload="),
    ("payload=64,sync=4", "needs rate="),
    ("payload=0,rate=1e6", "payload=0 must be at least 1 byte"),
    ("payload=64,rate=0", "rate=0.0 must be positive"),
    ("payload=64,rate=1e6,sync=-1", "sync=-1 must not be negative"),
    ("payload=64,rate=1e6,ack=-1", "ack=-1.0 must not be negative"),
    ("payload=64,rate=1e6,speed=3", "unknown option 'speed=3'"),
    ("payload=sixty,rate=1e6", "payload='sixty' is not a whole number"),
])
def test_parse_link_mistakes_name_the_problem_and_the_syntax(spec, problem):
    with pytest.raises(RadioError) as caught:
        parse_link(spec)
    message = str(caught.value)
    assert problem in message
    assert LINK_SYNTAX in message and "\n" not in message
    for name in RADIOS:
        assert name in message

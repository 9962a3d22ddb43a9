"""Protected bundles, the edge behind the link layer, and pipelines sized to a budget of air bytes."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from rich.progress import Progress

from codec_train.bundle import load_bundle, protected_bundle
from codec_train.data import load_dataset
from codec_train.edge import predict_from_payloads, send_over_link
from codec_train.simulate import graph_fec, run_graph
from codec_train.train import PRESETS, build_models, train_bundle
from radio.channel import IidChannel
from radio.fec import Fec, parse_fec
from radio.link import Link, Radio, parse_link
from semhil import cli_codec  # noqa: F401 - registers protect
from semhil.air_budget.pipelines import Pipeline, parse_pipeline, size_pipeline
from semhil.air_budget.scoring import score_over_link
from semhil.cli import cli
from semhil.errors import SemhilError

SHORT_TINY = dataclasses.replace(PRESETS["tiny"], task_epochs=2, stage1_epochs=1, stage2_epochs=2)
MNIST = (28, 28, 1)
SMALL_PACKETS = Link(Radio("test", max_payload_bytes=40, sync_bytes=4, header_bytes=2, crc_bytes=2, bit_rate=250e3, ack_timeout_s=1e-3))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = load_dataset("mnist5k")
    with Progress(disable=True) as progress:
        bundle = train_bundle(SHORT_TINY, tmp_path_factory.mktemp("air") / "tiny", progress, data)
    return bundle, data.x_test[:300], data.y_test[:300]


def test_a_protected_bundle_is_the_same_codec_with_an_fec_stage(trained):
    bundle, images, _ = trained
    fec = parse_fec("rs:16,interleave=8")
    protected = protected_bundle(bundle, fec)
    assert protected.path.name == f"{bundle.path.name}-rs16-il8" and protected.hash != bundle.hash
    assert protected.graph["fec"] == {"rs_parity": 16, "interleave_depth": 8, "sent_bytes": fec.encoded_bytes(bundle.graph["code_bytes"])}
    assert protected_bundle(bundle, fec).hash == protected.hash  # made once, then reused
    packed, sent = run_graph(bundle.graph, images)[1], run_graph(protected.graph, images)[1]
    assert np.array_equal(sent, fec.encode(packed)) and np.array_equal(fec.decode(sent).payloads, packed)
    with pytest.raises(SemhilError, match="already protected"):
        protected_bundle(protected, fec)
    with pytest.raises(SemhilError, match="no FEC"):
        protected_bundle(bundle, Fec())


def test_protect_command_prints_the_new_bundle(trained):
    bundle = trained[0]
    done = CliRunner().invoke(cli, ["protect", str(bundle.path), "--fec", "rs:8"])
    assert done.exit_code == 0, done.output
    assert load_bundle(f"{bundle.path}-rs8").graph["fec"]["rs_parity"] == 8 and "rs8" in done.output
    done = CliRunner().invoke(cli, ["protect", str(bundle.path), "--fec", "rs:0"])
    assert done.exit_code != 0 and "rs:<parity" in str(done.exception)


def test_with_the_crc_on_what_arrives_is_exact_and_lost_bytes_are_reported(trained):
    bundle, images, labels = trained
    task, codec = bundle.load_models()
    payloads = run_graph(bundle.graph, images)[1]
    link = dataclasses.replace(SMALL_PACKETS, packet_loss=0.3)
    arrival = send_over_link(codec, payloads, link, IidChannel(0.0), seed=1)
    assert np.array_equal(arrival.missing, arrival.delivery.lost) and 0.2 < arrival.missing.mean() < 0.4
    assert np.array_equal(arrival.payloads[~arrival.missing], payloads[~arrival.missing]) and not arrival.ber.any()
    clean = predict_from_payloads(task, codec, payloads, 0.0)
    damaged = predict_from_payloads(task, codec, arrival.payloads, arrival.ber, arrival.missing)
    assert (damaged == labels).mean() < (clean == labels).mean()


def test_rs_recovers_lost_packets_within_its_parity(trained):
    bundle, images, labels = trained
    task, codec = bundle.load_models()
    protected = protected_bundle(bundle, parse_fec("rs:64"))  # a 147 B code: one block, 64 erasures recoverable
    payloads = run_graph(protected.graph, images)[1]
    link = dataclasses.replace(SMALL_PACKETS, packet_loss=0.1)
    arrival = send_over_link(codec, payloads, link, IidChannel(0.0), seed=2, fec=graph_fec(protected.graph))
    lost_packets = arrival.delivery.packets_lost
    assert lost_packets.max() >= 2, "some image should lose more packets than its parity recovers"
    lost_bytes = arrival.delivery.lost.sum(axis=1)
    recoverable = lost_bytes <= 64
    assert not arrival.missing[recoverable].any()
    # one block, data first: beyond its parity, the data bytes that were lost stay missing
    assert np.array_equal(arrival.missing[~recoverable], arrival.delivery.lost[~recoverable, :147])
    assert np.array_equal(arrival.payloads[recoverable], run_graph(bundle.graph, images)[1][recoverable])


def test_crc_off_tells_the_decoder_the_ber_the_fec_left(trained):
    bundle, images, _ = trained
    _, codec = bundle.load_models()
    protected = protected_bundle(bundle, parse_fec("rs:32"))
    payloads = run_graph(protected.graph, images)[1]
    headless = Radio("headless", max_payload_bytes=40, sync_bytes=0, header_bytes=0, crc_bytes=2, bit_rate=250e3, ack_timeout_s=0.0)
    link = Link(headless, crc=False)  # no header to lose: every bit error reaches the FEC
    light = send_over_link(codec, payloads, link, IidChannel(0.002), seed=3, fec=graph_fec(protected.graph))
    assert not light.ber.any(), "RS with 16 errors per block corrects every image at BER 0.2 %"
    heavy = send_over_link(codec, payloads, link, IidChannel(0.05), seed=3, fec=graph_fec(protected.graph))
    assert np.isclose(heavy.ber[heavy.ber > 0], heavy.delivery.ber[heavy.ber > 0]).all() and (heavy.ber > 0).mean() > 0.5


def test_score_over_link_rows_add_up(trained):
    bundle, images, labels = trained
    payloads = run_graph(bundle.graph, images)[1]
    rows = score_over_link(bundle, labels, payloads, SMALL_PACKETS, 2, bers=(0.0, 0.01), losses=(0.2,))
    assert [(r["axis"], r["crc"]) for r in rows] == [("ber", False), ("ber", False), ("packet_loss", True)]
    clean, noisy, lossy = rows
    code_packets = -(-payloads.shape[1] // 40)
    assert clean["air_bytes_mean"] == payloads.shape[1] + code_packets * 8 and clean["retransmissions_mean"] == 0
    assert lossy["air_bytes_mean"] > clean["air_bytes_mean"] and lossy["retransmissions_mean"] > 0
    assert lossy["packet_loss_rate"] < 0.2 ** 2  # three tries each
    assert clean["accuracy"] > 0.5 and noisy["accuracy"] <= clean["accuracy"] + 0.02


@pytest.mark.parametrize("text, expected", [
    ("semanticnn", Pipeline("semanticnn")),
    ("deepcod+rs:16", Pipeline("deepcod", Fec(16))),
    ("raw-image+rs:8,interleave=4+arq:2", Pipeline("raw-image", Fec(8, 4), 2)),
])
def test_pipelines_parse_and_name_themselves(text, expected):
    assert parse_pipeline(text) == expected and parse_pipeline(expected.name) == expected


@pytest.mark.parametrize("text, problem", [("agilenn+rs:8", "cannot be sized"), ("semanticnn+arq:x", "whole number"),
                                           ("semanticnn+rs:999", "rs")])
def test_bad_pipelines_say_what_is_wrong(text, problem):
    with pytest.raises(Exception, match=problem):
        parse_pipeline(text)


@pytest.mark.parametrize("codec", ["semanticnn", "deepcod", "raw-feature", "raw-image"])
@pytest.mark.parametrize("budget", [157, 78])
def test_a_sized_pipeline_fits_its_budget_and_one_step_more_would_not(codec, budget):
    link = parse_link("ble")
    pipeline = Pipeline(codec, Fec(8))
    sized = size_pipeline(pipeline, PRESETS["demo"], budget, link, MNIST, 10)
    assert sized.code_bytes == build_models(sized.config, MNIST, 10)[1].shape.bytes_per_image
    assert sized.fec.rs_parity >= 8 and sized.air_bytes == link.air_bytes(sized.fec.encoded_bytes(sized.code_bytes)) <= budget
    assert link.air_bytes(dataclasses.replace(sized.fec, rs_parity=sized.fec.rs_parity + 1).encoded_bytes(sized.code_bytes)) > budget
    assert sized.air_bytes == budget, "one RS block: the parity fills the budget to the byte"
    if sized.config.crop_ratio < 1:
        full = build_models(dataclasses.replace(sized.config, crop_ratio=1.0), MNIST, 10)[1].shape.sent_shape
        side = int(np.floor(np.sqrt(sized.config.crop_ratio) * full[0]))
        bigger = dataclasses.replace(sized.config, crop_ratio=min(1.0, ((side + 1.5) / full[0]) ** 2))
        more = build_models(bigger, MNIST, 10)[1].shape.bytes_per_image
        assert link.air_bytes(Fec(8).encoded_bytes(more)) > budget


def test_a_budget_below_the_overhead_is_refused():
    with pytest.raises(SemhilError, match="leave no room"):
        size_pipeline(Pipeline("semanticnn", Fec(8)), PRESETS["demo"], 15, parse_link("ble"), MNIST, 10)


def test_the_table_has_a_column_per_point_and_a_dash_where_a_pipeline_lacks_it():
    from semhil.air_budget.table import header_and_cells
    base = {"budget_air_bytes": 157, "crop_ratio": 1.0, "code_bytes": 147, "fec": {"fec": "none"}, "air_bytes": 157,
            "bit_exact_fraction": 1.0}
    rows = [{**base, "pipeline": "a", "results": [{"axis": "ber", "ber": 0.0, "packet_loss": 0.0, "accuracy": 0.9, "air_bytes_mean": 157},
                                                  {"axis": "packet_loss", "ber": 0.0, "packet_loss": 0.2, "accuracy": 0.5,
                                                   "air_bytes_mean": 190.4}]},
            {**base, "pipeline": "b", "results": [{"axis": "ber", "ber": 0.01, "packet_loss": 0.0, "accuracy": 0.8, "air_bytes_mean": 157}]}]
    header, cells = header_and_cells(rows)
    assert header == ["pipeline", "crop", "code B", "FEC", "air B", "BER 0 %", "BER 1 %", "loss 20 %"]
    assert cells[0][5:] == ["90.0", "-", "50.0 @190B"] and cells[1][5:] == ["-", "80.0", "-"]


def test_eval_sends_the_code_in_packets_over_any_channel(trained, tmp_path):
    bundle = trained[0]
    out = tmp_path / "eval.json"
    done = CliRunner().invoke(cli, ["eval", str(bundle.path), "--channel", "ge:0.002,16", "--channel", "iid:0",
                                    "--link", "802.15.4,arq=1", "--json", str(out)])
    assert done.exit_code == 0, done.output
    bursty, clean = json.loads(out.read_text())["results"]
    assert bursty["link"]["radio"]["name"] == "802.15.4" and bursty["link"]["max_retransmissions"] == 1
    assert bursty["packet_loss_rate"] > 0 and bursty["retransmissions_mean"] > 0 and bursty["air_bytes_mean"] > clean["air_bytes_mean"]
    assert clean["packet_loss_rate"] == 0 and clean["air_bytes_mean"] == parse_link("802.15.4").air_bytes(bundle.graph["code_bytes"])
    assert clean["accuracy"] >= bursty["accuracy"]
    done = CliRunner().invoke(cli, ["eval", str(bundle.path), "--link", "ble", "--pilots", "32"])
    assert done.exit_code != 0 and "--pilots or --link" in str(done.exception)

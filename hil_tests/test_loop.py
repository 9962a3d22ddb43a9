"""The whole loop on a board: codes, accuracy under bit errors, protocol robustness, bundle identity."""
import json
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from codec_train.data import load_dataset
from codec_train.simulate import run_graph
from semhil.build import build_firmware
from semhil.dut import BoardNotAnswering, Dut
from semhil.protocol import ErrorCode, MsgType, cobs_encode, encode_frame, parse_error
from semhil.session import BundleMismatch, RunOptions, collect_codes, run_on_board

from conftest import another_bundle


def accuracy_at(result, ber):
    return next(row for row in result["results"] if row["ber"] == ber)


def test_every_device_code_equals_the_simulator(run_result):
    assert run_result["n_images"] == 1000  # the whole test split
    assert run_result["bit_exact_fraction"] == 1.0


def test_board_accuracy_at_ber0_matches_float_pipeline(run_result):
    row = accuracy_at(run_result, 0.0)
    assert row["accuracy"] > 0.5, "the tiny codec should have learnt something"
    assert abs(row["accuracy"] - row["float_accuracy"]) <= 0.01


def test_bit_errors_cost_accuracy(run_result):
    assert accuracy_at(run_result, 0.05)["accuracy"] < accuracy_at(run_result, 0.0)["accuracy"]


def test_results_json_has_the_contract_fields(run_result, board_config, backend, bundle):
    path = Path(run_result["run_dir"]) / "results.json"
    assert path.parent.parent == bundle.path / "results" / f"{board_config.name}-{backend}"
    assert path.parent.name == run_result["run_id"] and (path.parent.parent / "latest" / "results.json").is_file()
    saved = json.loads(path.read_text())
    assert saved == json.loads(json.dumps(run_result))
    assert saved["bytes_per_image"] == 147 and saved["bundle_hash"] == bundle.hash
    device = saved["device"]
    assert device["flash_bytes"] > 0 and device["ram_static_bytes"] >= device["arena_bytes"] > 0
    assert 0 < device["stack_peak_bytes"] < 16 * 1024
    assert device["latency"]["unit"] == board_config.latency_unit and 0 < device["latency"]["median"] <= device["latency"]["p95"]
    assert [r["ber"] for r in saved["results"]] == [0.0, 0.001, 0.01, 0.05]
    assert 0 < saved["round_trip_ms"]["median"] <= saved["round_trip_ms"]["p95"]
    assert saved["board_info"]["reset_cause"] and saved["warnings"] == []
    lines = (path.parent / "images.jsonl").read_text().splitlines()
    assert len(lines) == 1000 and all(json.loads(line)["bit_exact"] for line in lines)


def test_table_shows_the_run_as_one_row(run_result, board_config, tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run_result))
    done = subprocess.run([sys.executable, "-c", "from semhil.cli import main; main()", "table", str(path)],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if board_config.name in line)
    assert f"{accuracy_at(run_result, 0.01)['accuracy'] * 100:.1f} %" in row and str(run_result["bytes_per_image"]) in row


def test_garbled_frame_gets_error_then_infer_still_works(dut, bundle):
    image = load_dataset("mnist5k").x_test[:1]
    wire = bytearray(encode_frame(MsgType.INFER, 7, image.tobytes()))
    wire[100] ^= 0x10 if wire[100] not in (0x00, 0x10) else 0x01  # corrupt the payload, keep the delimiter
    dut.write_raw(bytes(wire))
    reply = dut.read_frame(5.0)
    assert reply is not None and reply.type == MsgType.ERROR
    assert parse_error(reply.payload)[0] == ErrorCode.BAD_CRC
    _, expected = run_graph(bundle.graph, image)
    assert dut.infer(image.tobytes()).code == expected[0].tobytes()


def test_oversized_and_truncated_frames_do_not_hang_the_board(dut, bundle):
    dut.write_raw(b"\x01" * 3000 + b"\x00")
    reply = dut.read_frame(5.0)
    assert reply.type == MsgType.ERROR and parse_error(reply.payload)[0] == ErrorCode.OVERSIZED
    header = bytes([1, MsgType.INFER, 9, 0, 3, 0]) + b"abc"
    dut.write_raw(cobs_encode(header + zlib.crc32(header).to_bytes(4, "little")) + b"\x00")
    reply = dut.read_frame(5.0)
    assert reply.type == MsgType.ERROR and parse_error(reply.payload)[0] == ErrorCode.BAD_INPUT_SIZE
    assert dut.info()["bundle_hash"] == bundle.hash


def test_firmware_from_another_bundle_is_refused(bundle, board_config, tmp_path):
    other_firmware = build_firmware(another_bundle(bundle, tmp_path / "other"), board_config)
    with pytest.raises(BundleMismatch, match=f"not {bundle.hash}"):
        run_on_board(bundle, board_config, RunOptions(n_images=5), firmware=other_firmware)


def first_test_images(bundle, n):
    """(images, labels, the simulator's codes) of the first n test images."""
    data = load_dataset("mnist5k")
    return data.x_test[:n], data.y_test[:n], run_graph(bundle.graph, data.x_test[:n])[1]


class StopBoardAfter:
    """A progress sink that sends the board process a signal after n images: SIGSTOP freezes it (a
    board that stops answering), SIGKILL ends it and its serial port disappears (a board unplugged)."""

    def __init__(self, pid: int, n: int, sig: int = signal.SIGSTOP):
        self.pid, self.n, self.sig, self.done = pid, n, sig, 0

    def add_task(self, *args, **kwargs):
        return 0

    def advance(self, job):
        self.done += 1
        if self.done == self.n:
            os.kill(self.pid, self.sig)


def test_silent_board_names_the_image_and_keeps_what_was_measured(board_config, bundle, running_board, tmp_path):
    images, labels, expected = first_test_images(bundle, 6)
    log = tmp_path / "images.jsonl"
    with Dut(running_board.port, board_config.name, timeout_s=0.5, retries=1) as dut:
        dut.wait_ready()
        with pytest.raises(BoardNotAnswering, match=r"did not answer image 3 .*3 images measured so far"):
            collect_codes(dut, images, labels, expected, log, StopBoardAfter(running_board.process.pid, 3))
    os.kill(running_board.process.pid, signal.SIGCONT)
    assert [json.loads(line)["index"] for line in log.read_text().splitlines()] == [0, 1, 2]


def test_serial_port_that_disappears_mid_run_is_named_and_keeps_what_was_measured(board_config, bundle, running_board, tmp_path):
    images, labels, expected = first_test_images(bundle, 6)
    log = tmp_path / "images.jsonl"
    with Dut(running_board.port, board_config.name, timeout_s=2.0, retries=1) as dut:
        dut.wait_ready()
        with pytest.raises(BoardNotAnswering, match=r"serial port .* failed.*4 images measured so far"):
            collect_codes(dut, images, labels, expected, log, StopBoardAfter(running_board.process.pid, 4, signal.SIGKILL))
    assert [json.loads(line)["bit_exact"] for line in log.read_text().splitlines()] == [True] * 4


def test_silent_board_is_reset_and_the_image_retried(board_config, bundle, running_board, tmp_path):
    images, labels, expected = first_test_images(bundle, 4)
    with Dut(running_board.port, board_config.name, timeout_s=0.5, retries=1, reset=running_board.restart) as dut:
        dut.wait_ready()
        records = collect_codes(dut, images, labels, expected, tmp_path / "images.jsonl", StopBoardAfter(running_board.process.pid, 2))
    assert [r["bit_exact"] for r in records] == [True] * 4
    assert any("reset" in entry for entry in dut.log)


def test_layer_times_cover_the_inference(dut, bundle, backend):
    image = load_dataset("mnist5k").x_test[:1].tobytes()
    result = dut.infer(image)
    ticks = dut.layer_ticks()
    names = list(ticks)
    assert names[0] == "input" and names[-1] == "packer"
    graph_names = [layer["name"] for layer in bundle.graph["layers"] if layer["op"] == "conv2d"]
    assert all(name in names for name in graph_names)
    assert all(ticks[name] > 0 for name in graph_names)
    assert sum(ticks.values()) <= result.ticks
    assert dut.info()["model_status"] == "0"


def test_decoder_told_the_ber_from_pilots_on_a_dynamic_channel(bundle, board, backend, tmp_path):
    from semhil.channel import DynamicBerChannel
    from semhil.pilots import Pilots
    options = RunOptions(n_images=100, backend=backend, channels=(DynamicBerChannel(0.0001, 0.05),), pilots=Pilots(64))
    result = run_on_board(bundle, board.config, options, firmware=board.firmware, process=board.process, out_dir=tmp_path)
    row = result["results"][0]
    assert row["ber_source"] == "pilots" and row["pilot_bits"] == 64 and row["n"] == 100
    expected = (0.025 * 64 + 0.5) / (64 + 1)  # the estimator's mean at the range's mean BER (its prior adds half an error)
    assert abs(row["ber_estimate_mean"] - expected) < 0.008  # 3 standard errors over 100 frames
    assert row["accuracy"] > 0.5

"""The whole loop on a board: codes, accuracy under bit errors, protocol robustness, bundle identity."""
import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from codec_train.data import load_dataset
from codec_train.simulate import run_graph
from semhil.build import build_firmware
from semhil.dut import BoardNotAnswering, DeviceError, Dut
from semhil.errors import SemhilError
from semhil.protocol import (CHUNK_OK, PROTOCOL_VERSION, ErrorCode, Frame, MsgType, cobs_encode, encode_frame, encode_image_chunk,
                             parse_chunk_ok, parse_error, parse_infer_ok)
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
    after = device["latency_after_last_byte"]  # each image's compute after its last byte is part of its whole compute
    assert after["unit"] == board_config.latency_unit and 0 < after["median"] <= after["p95"]
    assert after["median"] <= device["latency"]["median"] and after["p95"] <= device["latency"]["p95"]
    assert device["peak_ram_bytes"] == device["ram_static_bytes"] + device["stack_peak_bytes"]
    assert [r["ber"] for r in saved["results"]] == [0.0, 0.001, 0.01, 0.05]
    assert 0 < saved["round_trip_ms"]["median"] <= saved["round_trip_ms"]["p95"]
    assert saved["board_info"]["reset_cause"] and saved["warnings"] == []
    lines = (path.parent / "images.jsonl").read_text().splitlines()
    assert len(lines) == 1000 and all(json.loads(line)["bit_exact"] for line in lines)
    assert all(0 < (r := json.loads(line))["ticks_after_last_byte"] <= r["ticks"] for line in lines)


def test_table_shows_the_run_as_one_row(run_result, board_config, tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run_result))
    done = subprocess.run([sys.executable, "-c", "from semhil.cli import main; main()", "table", str(path)],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if board_config.name in line)
    assert f"{accuracy_at(run_result, 0.01)['accuracy'] * 100:.1f} %" in row and str(run_result["bytes_per_image"]) in row
    assert f"{run_result['device']['latency_after_last_byte']['median']:,.0f}" in row  # the latency after the last byte


def test_garbled_frame_gets_error_then_infer_still_works(dut, bundle):
    image = load_dataset("mnist5k").x_test[:1]
    chunk_rows, row_bytes = int(dut.board_info["chunk_rows"]), int(dut.board_info["row_bytes"])
    wire = bytearray(encode_frame(MsgType.IMAGE_CHUNK, 7, encode_image_chunk(1, 0, image.tobytes()[:chunk_rows * row_bytes])))
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
    header = bytes([PROTOCOL_VERSION, MsgType.IMAGE_CHUNK, 9, 0, 3, 0]) + b"abc"
    dut.write_raw(cobs_encode(header + zlib.crc32(header).to_bytes(4, "little")) + b"\x00")
    reply = dut.read_frame(5.0)
    assert reply.type == MsgType.ERROR and parse_error(reply.payload)[0] == ErrorCode.BAD_INPUT_SIZE
    assert dut.info()["bundle_hash"] == bundle.hash


# An image goes up in chunks of rows, one at a time. The tests below drive that by hand, frame by
# frame, with the test images of mnist5k (28 rows of 28 bytes), in chunks of ROWS rows or fewer.
ROWS = 5


class Images:
    """Test images by index: their rows, and the simulator's code of each."""

    def __init__(self, bundle, dut, n=4):
        self.pixels = load_dataset("mnist5k").x_test[:n]
        self.codes = [code.tobytes() for code in run_graph(bundle.graph, self.pixels)[1]]
        self.rows, self.row_bytes = int(dut.board_info["input_rows"]), int(dut.board_info["row_bytes"])
        self.chunk_rows = int(dut.board_info["chunk_rows"])
        assert self.rows * self.row_bytes == self.pixels[0].size and self.chunk_rows >= ROWS
        dut.max_chunk_rows = ROWS  # several chunks an image, whatever the board would take
        # a whole image first: an image an earlier test left unfinished on the board is ended
        assert dut.infer(self.pixels[n - 1].tobytes()).code == self.codes[n - 1]

    def rows_of(self, index: int, first: int, n: int) -> bytes:
        return self.pixels[index].tobytes()[first * self.row_bytes:(first + n) * self.row_bytes]


def send_chunk(dut, image_id: int, first_row: int, pixels: bytes):
    """One IMAGE_CHUNK and the board's answer to it."""
    return exchange(dut, MsgType.IMAGE_CHUNK, encode_image_chunk(image_id, first_row, pixels))


def exchange(dut, msg_type, payload: bytes):
    dut.seq = (dut.seq + 1) & 0xFFFF
    dut.write_raw(b"\x00" + encode_frame(msg_type, dut.seq, payload))
    reply = dut.read_frame(10.0)
    assert reply is not None and reply.seq == dut.seq, reply
    return reply


def chunk_ok(reply) -> tuple[int, int]:
    assert reply.type == MsgType.CHUNK_OK, (hex(reply.type), reply.payload)
    return parse_chunk_ok(reply.payload)


def refused(reply, code: ErrorCode) -> str:
    """The text of an ERROR with this code."""
    assert reply.type == MsgType.ERROR, f"expected ERROR {code.name}, got frame type {reply.type:#x}"
    got, text = parse_error(reply.payload)
    assert got == code, f"expected {code.name}, got {ErrorCode(got).name}: {text}"
    return text


def send_rows(dut, images: Images, index: int, image_id: int, first: int, last: int):
    """Rows first..last-1 of an image in chunks of ROWS rows; returns the answer to the last chunk
    (all the others must be CHUNK_OK)."""
    for at in range(first, last, ROWS):
        n = min(ROWS, last - at)
        reply = send_chunk(dut, image_id, at, images.rows_of(index, at, n))
        if at + n < last:
            assert chunk_ok(reply) == (image_id, at + n)
    return reply


def code_of(reply) -> bytes:
    assert reply.type == MsgType.INFER_OK, f"expected INFER_OK, got frame type {reply.type:#x}: {reply.payload[:80]}"
    return parse_infer_ok(reply.payload).code


def still_answers_bit_exactly(dut, images: Images, index: int = 3):
    assert dut.infer(images.pixels[index].tobytes()).code == images.codes[index]


def test_info_says_how_an_image_is_chunked(dut):
    info = dut.board_info
    assert info["proto"] == str(PROTOCOL_VERSION) == "2"
    rows, row_bytes, chunk_rows = int(info["input_rows"]), int(info["row_bytes"]), int(info["chunk_rows"])
    assert rows * row_bytes == int(info["input_bytes"]) == 28 * 28
    assert 1 <= chunk_rows <= rows and int(info["chunk_bytes"]) == chunk_rows * row_bytes


def test_a_chunk_out_of_order_is_refused_and_never_finishes_the_image(dut, bundle):
    images = Images(bundle, dut)
    assert chunk_ok(send_chunk(dut, 40, 0, images.rows_of(0, 0, ROWS))) == (40, ROWS)
    # the image's last rows, sent while rows 5.. are still missing: no code from a partial image
    last = images.rows - 3
    text = refused(send_chunk(dut, 40, last, images.rows_of(0, last, 3)), ErrorCode.IMAGE_OUT_OF_ORDER)
    assert f"row {last}" in text and f"expected row {ROWS}" in text
    refused(send_chunk(dut, 40, 2 * ROWS, images.rows_of(0, 2 * ROWS, ROWS)), ErrorCode.IMAGE_OUT_OF_ORDER)
    # the image in progress is untouched: its missing rows complete it, bit-exactly
    assert code_of(send_rows(dut, images, 0, 40, ROWS, images.rows)) == images.codes[0]
    still_answers_bit_exactly(dut, images)


def test_a_chunk_of_an_image_not_begun_is_refused(dut, bundle):
    images = Images(bundle, dut)
    text = refused(send_chunk(dut, 41, ROWS, images.rows_of(0, ROWS, ROWS)), ErrorCode.IMAGE_NOT_BEGUN)
    assert "image 41" in text and "row 0" in text
    # another image's rows while image 42 is in progress: neither image takes them, no mixed image
    assert chunk_ok(send_chunk(dut, 42, 0, images.rows_of(1, 0, ROWS))) == (42, ROWS)
    text = refused(send_chunk(dut, 43, ROWS, images.rows_of(2, ROWS, ROWS)), ErrorCode.IMAGE_NOT_BEGUN)
    assert "image 43" in text and "image 42" in text
    assert code_of(send_rows(dut, images, 1, 42, ROWS, images.rows)) == images.codes[1]
    still_answers_bit_exactly(dut, images)


def test_an_image_cut_short_is_dropped_and_the_new_one_sent_again(dut, bundle):
    images = Images(bundle, dut)
    assert chunk_ok(send_chunk(dut, 44, 0, images.rows_of(0, 0, ROWS))) == (44, ROWS)
    assert chunk_ok(send_chunk(dut, 44, ROWS, images.rows_of(0, ROWS, ROWS))) == (44, 2 * ROWS)
    text = refused(send_chunk(dut, 45, 0, images.rows_of(1, 0, ROWS)), ErrorCode.IMAGE_CUT_SHORT)
    assert f"after row {2 * ROWS}" in text and "image 45" in text
    # the unfinished image is gone: its remaining rows are refused, never coded as a partial image
    refused(send_chunk(dut, 44, 2 * ROWS, images.rows_of(0, 2 * ROWS, ROWS)), ErrorCode.IMAGE_NOT_BEGUN)
    # the new image, sent again from row 0, gets its own code
    assert code_of(send_rows(dut, images, 1, 45, 0, images.rows)) == images.codes[1]
    still_answers_bit_exactly(dut, images)


def test_a_chunk_larger_than_announced_is_refused(dut, bundle):
    images = Images(bundle, dut)
    too_many = images.chunk_rows + 1
    if too_many <= images.rows:
        text = refused(send_chunk(dut, 46, 0, images.rows_of(0, 0, too_many)), ErrorCode.CHUNK_TOO_LARGE)
        assert f"chunk_rows={images.chunk_rows}" in text or f"chunk_bytes={images.chunk_rows * images.row_bytes}" in text
    assert chunk_ok(send_chunk(dut, 46, 0, images.rows_of(0, 0, ROWS))) == (46, ROWS)
    # rows past the image's end (the last rows and one more)
    start = images.rows - 2
    text = refused(send_chunk(dut, 46, start, images.rows_of(0, start, 2) + bytes(images.row_bytes)), ErrorCode.CHUNK_TOO_LARGE)
    assert f"input_rows={images.rows}" in text
    # pixels that are not whole rows, and a chunk without rows
    for payload in (encode_image_chunk(46, ROWS, images.rows_of(0, ROWS, 1)[:-1]), encode_image_chunk(46, ROWS, b""), b"\x2e\x00\x05"):
        text = refused(exchange(dut, MsgType.IMAGE_CHUNK, payload), ErrorCode.BAD_INPUT_SIZE)
        assert f"payload of {len(payload)} bytes" in text and f"row_bytes={images.row_bytes}" in text
    assert code_of(send_rows(dut, images, 0, 46, ROWS, images.rows)) == images.codes[0]
    still_answers_bit_exactly(dut, images)


def test_garbage_between_chunks_leaves_the_image_in_progress(dut, bundle):
    images = Images(bundle, dut)
    assert chunk_ok(send_chunk(dut, 47, 0, images.rows_of(2, 0, ROWS))) == (47, ROWS)
    next_chunk = encode_frame(MsgType.IMAGE_CHUNK, 500, encode_image_chunk(47, ROWS, images.rows_of(2, ROWS, ROWS)))
    body = bytearray(struct.pack("<BBHH", PROTOCOL_VERSION, MsgType.IMAGE_CHUNK, 501, 4 + ROWS * images.row_bytes)
                     + encode_image_chunk(47, ROWS, images.rows_of(2, ROWS, ROWS)))
    crc = zlib.crc32(body).to_bytes(4, "little")
    body[-3] ^= 0x21  # one pixel changed after the CRC was taken
    garbled = cobs_encode(bytes(body) + crc) + b"\x00"
    for wire, code in ((b"\x00\x07\x07\x07\x00", ErrorCode.BAD_COBS), (garbled, ErrorCode.BAD_CRC),
                       (next_chunk[:30] + b"\x00", None), (b"\x55" * 2000 + b"\x00", ErrorCode.OVERSIZED)):
        dut.write_raw(wire)
        reply = dut.read_frame(5.0)
        assert reply is not None and reply.type == MsgType.ERROR
        if code is not None:
            assert parse_error(reply.payload)[0] == code
    assert code_of(send_rows(dut, images, 2, 47, ROWS, images.rows)) == images.codes[2]
    still_answers_bit_exactly(dut, images)


def test_a_chunk_sent_again_after_a_lost_answer_is_not_consumed_twice(dut, bundle):
    images = Images(bundle, dut)
    first = images.rows_of(1, 0, ROWS)
    assert chunk_ok(send_chunk(dut, 48, 0, first)) == (48, ROWS)
    assert chunk_ok(send_chunk(dut, 48, 0, first)) == (48, ROWS)  # its CHUNK_OK was lost: the same answer
    assert chunk_ok(send_chunk(dut, 48, ROWS, images.rows_of(1, ROWS, ROWS))) == (48, 2 * ROWS)
    assert chunk_ok(send_chunk(dut, 48, ROWS, images.rows_of(1, ROWS, ROWS))) == (48, 2 * ROWS)
    done = send_rows(dut, images, 1, 48, 2 * ROWS, images.rows)
    assert code_of(done) == images.codes[1]
    last = list(range(2 * ROWS, images.rows, ROWS))[-1]  # the first row of the last chunk send_rows sent
    again = send_chunk(dut, 48, last, images.rows_of(1, last, images.rows - last))
    assert again.type == MsgType.INFER_OK and again.payload == done.payload  # the kept answer: nothing computed again
    result = parse_infer_ok(done.payload)
    assert 0 < result.ticks_after_last_byte <= result.ticks
    still_answers_bit_exactly(dut, images)


class Tamper:
    """Stands between the Dut and its board: drops the answers (or chunks) chosen, or changes them."""

    def __init__(self, dut, drop_answer=(), drop_chunk=(), change=None):
        self.dut, self.read, self.write = dut, dut.read_frame, dut.write_raw
        self.drop_answer, self.drop_chunk, self.change = list(drop_answer), list(drop_chunk), change
        self.answers = self.chunks = 0
        dut.read_frame, dut.write_raw = self.read_frame, self.write_raw

    def read_frame(self, timeout_s):
        frame = self.read(timeout_s)
        if frame is not None and frame.type in (MsgType.CHUNK_OK, MsgType.INFER_OK):
            self.answers += 1
            if self.answers in self.drop_answer:
                return self.read(min(timeout_s, 0.2))  # lost: nothing else comes
            if self.change:
                frame = self.change(frame)
        return frame

    def write_raw(self, data):
        if b"\x00" in data[1:-1] or len(data) < 40:  # not a chunk (a chunk's frame is long and its COBS has no 0x00)
            return self.write(data)
        self.chunks += 1
        if self.chunks not in self.drop_chunk:
            self.write(data)


def test_dut_sends_a_chunk_again_when_it_or_its_answer_is_lost(dut, bundle):
    images = Images(bundle, dut)
    dut.timeout_s = 0.5
    Tamper(dut, drop_answer=[1, 4], drop_chunk=[3])
    for index in (0, 1):
        assert dut.infer(images.pixels[index].tobytes(), f"image {index}").code == images.codes[index]
    assert sum("no reply" in entry for entry in dut.log) == 3
    assert not any("from row 0" in entry for entry in dut.log)  # the board took each lost chunk's repeat as it should


def test_dut_begins_again_on_a_board_holding_an_unfinished_image(dut, bundle):
    images = Images(bundle, dut)
    assert chunk_ok(send_chunk(dut, dut.image_id ^ 0x5555, 0, images.rows_of(0, 0, ROWS))) == (dut.image_id ^ 0x5555, ROWS)
    assert dut.infer(images.pixels[1].tobytes(), "image 1").code == images.codes[1]
    assert any("IMAGE_CUT_SHORT" in entry and "image 1" in entry for entry in dut.log)


def test_dut_refuses_a_chunk_ok_for_the_wrong_row(dut, bundle):
    images = Images(bundle, dut)

    def wrong_row(frame):
        if frame.type != MsgType.CHUNK_OK:
            return frame
        image, next_row = parse_chunk_ok(frame.payload)
        return Frame(frame.type, frame.seq, CHUNK_OK.pack(image, next_row + 1))
    Tamper(dut, change=wrong_row)
    with pytest.raises(DeviceError, match=r"wrong CHUNK_OK: it is for image \d+, next row \d+, not image \d+, next row \d+"):
        dut.infer(images.pixels[0].tobytes())


def test_dut_needs_the_board_info_and_an_image_of_its_size(board, bundle):
    images = load_dataset("mnist5k").x_test[:1].tobytes()
    with Dut(board.port, board.target.id, baud=board.config.uart_baud) as dut:
        with pytest.raises(SemhilError, match=r"call wait_ready\(\) or info\(\) before infer"):
            dut.infer(images)
        dut.info()
        with pytest.raises(SemhilError, match=r"783 bytes; board .* takes images of 28 rows of 28 bytes = 784 bytes"):
            dut.infer(images[:-1], "image 9")


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


def test_layer_times_cover_the_inference(dut, bundle, backend, board_config):
    image = load_dataset("mnist5k").x_test[:1].tobytes()
    result = dut.infer(image)
    ticks = dut.layer_ticks()
    names = list(ticks)
    if board_config.run_kind == "micropython":  # no timer cheap enough per layer: LAYERS says nothing rather than zeros
        assert ticks == {} and result.ticks > 0
        return
    assert names[0] == "input" and names[-1] == "packer"
    graph_names = [layer["name"] for layer in bundle.graph["layers"] if layer["op"] == "conv2d"]
    assert all(name in names for name in graph_names)
    assert all(ticks[name] > 0 for name in graph_names)
    assert sum(ticks.values()) <= result.ticks
    assert dut.info()["model_status"] == "0"


def test_decoder_told_the_ber_from_pilots_on_a_dynamic_channel(bundle, board, backend, tmp_path):
    from radio.channel import DynamicBerChannel
    from radio.pilots import Pilots
    options = RunOptions(n_images=100, backend=backend, channels=(DynamicBerChannel(0.0001, 0.05),), pilots=Pilots(64))
    result = run_on_board(bundle, board.config, options, firmware=board.firmware, process=board.process, out_dir=tmp_path)
    row = result["results"][0]
    assert row["ber_source"] == "pilots" and row["pilot_bits"] == 64 and row["n"] == 100
    expected = (0.025 * 64 + 0.5) / (64 + 1)  # the estimator's mean at the range's mean BER (its prior adds half an error)
    assert abs(row["ber_estimate_mean"] - expected) < 0.008  # 3 standard errors over 100 frames
    assert row["accuracy"] > 0.5

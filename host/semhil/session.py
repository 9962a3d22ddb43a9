"""One run of a bundle on a board: build, start, check the firmware's bundle hash, send the test
images, check every code against the int8 simulator, then score the codes through the channel.

Each run writes into a folder of its own, <bundle>/results/<board>-<backend>/<run id>/ (semhil.store):
per-image records are appended to images.jsonl there as they arrive, so a crash loses at most the
image in flight; results.json follows, and `latest` beside the folder then points at it.
"""
from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from codec_train.data import load_dataset
from codec_train.simulate import run_graph, sent_code_bytes
from radio.channel import DEFAULT_BERS, IidChannel

from .backends.graph import activation_lower_bound, total_macs
from .boards import Board
from .build import Firmware, build_firmware
from .discovery import ProbeChoice
from .dut import BoardNotAnswering, Dut
from .errors import SemhilError
from .jsonl import append_line, read_whole_lines
from .model_report import layer_rows
from .runners import open_board
from .scoring import score
from .store import mark_latest, new_run_dir, new_run_id, write_atomically

DEFAULT_CHANNELS = tuple(IidChannel(ber) for ber in DEFAULT_BERS)


class BundleMismatch(SemhilError):
    """The board runs a firmware built from another bundle."""


@dataclass(frozen=True)
class RunOptions:
    n_images: int = 1000
    seed: int = 0
    backend: str = "standalone"
    warmup: int = 5
    probe: ProbeChoice | None = None  # the ST-LINK of a silicon board
    port_url: str | None = None       # a board already running there (e.g. rfc2217://host:2217): not started or flashed
    place: object | None = None       # places.PlaceChoice: the board of a labgrid place, held for the run
    channels: tuple = DEFAULT_CHANNELS  # channel models the codes are scored through (radio.channel)
    pilots: object | None = None      # pilots.Pilots: the decoder is told the BER estimated from pilot bits
    resume: bool = False              # keep the images an earlier, interrupted run logged and send only the rest


def check_firmware(info: dict, bundle, board: Board) -> None:
    if info.get("board", board.name) != board.name:
        raise BundleMismatch(f"the board answering as {board.name} runs firmware built for board {info['board']}: "
                             f"give --board {info['board']}, or connect (or tag) the right board")
    if info.get("bundle_hash") != bundle.hash:
        raise BundleMismatch(f"board {board.name} runs firmware built from bundle {info.get('bundle_hash')}, "
                             f"not {bundle.hash} ({bundle.path}); rebuild and flash it: semhil run {bundle.path} --board {board.name}")


def board_warnings(info: dict, board: Board) -> list[str]:
    """What the board's INFO says that the technician should know."""
    clock = int(info.get("core_clock_hz", 0))
    if board.is_mcu and clock != board.clock_hz and not (board.run_kind == "micropython" and clock == 0):  # 0: MicroPython cannot tell
        return [f"the board runs at {clock / 1e6:g} MHz, not the {board.clock_hz / 1e6:g} MHz of {board.path}: its oscillator "
                "or PLL did not start (check the board's clock source in the board file and its solder bridges)"]
    return []


UNITS_PER_SECOND = {"ns": 1e9, "instructions": 1e9, "us": 1e6}  # QEMU -icount shift=0: one instruction a nanosecond


def device_latency(ticks: np.ndarray, board: Board, timer_hz: int) -> np.ndarray:
    """Device ticks in the board's latency unit: DWT ticks are cycles; SysTick (or MicroPython's
    ticks_us) under QEMU -icount shift=0 become instructions; the native board's are nanoseconds,
    micropython-unix's microseconds."""
    if board.latency_source == "cycles":
        return ticks.astype(float)
    return ticks * (UNITS_PER_SECOND[board.latency_unit] / timer_hz)


def micropython_figures(info: dict) -> dict:
    """What a MicroPython board's INFO adds: the module's size and the heap in use with it loaded."""
    keys = ("module_bytes", "heap_used_bytes", "heap_free_bytes")
    return {key: int(info[key]) for key in keys if key in info} | ({"micropython": info["micropython"]} if "micropython" in info else {})


def logged_records(log_path: Path, labels: np.ndarray) -> list[dict]:
    """The images an interrupted run logged, in order and for these labels."""
    return read_whole_lines(log_path, lambda i, record: i < len(labels) and record.get("index") == i
                            and record.get("label") == int(labels[i]))


def collect_codes(dut: Dut, images: np.ndarray, labels: np.ndarray, expected: np.ndarray, log_path: Path,
                  progress: Progress | None = None, resume: bool = False) -> list[dict]:
    """Send every image (in chunks of rows, Dut.infer) and get its code; append one JSON line per image to
    log_path as it arrives. With resume, the images already in log_path are kept and not sent again."""
    records = logged_records(log_path, labels) if resume else []
    job = progress.add_task(f"images on {dut.name}", total=len(images), completed=len(records)) if progress else None
    with log_path.open("a" if resume else "w") as log:
        for i in range(len(records), len(images)):
            image = images[i]
            sent = time.perf_counter()
            try:
                result = dut.infer(image.tobytes(), f"image {i}")
            except BoardNotAnswering as e:
                raise BoardNotAnswering(f"{e}; the {i} images measured so far are in {log_path}") from None
            record = {"index": i, "label": int(labels[i]), "code": result.code.hex(), "ticks": result.ticks,
                      "ticks_after_last_byte": result.ticks_after_last_byte, "stack_peak_bytes": result.stack_peak_bytes,
                      "bit_exact": result.code == expected[i].tobytes(), "round_trip_ms": round((time.perf_counter() - sent) * 1000, 3)}
            append_line(log, record)
            records.append(record)
            if progress:
                progress.advance(job)
    return records


def run_on_board(bundle, board: Board, options: RunOptions, json_path: Path | None = None,
                 progress: Progress | None = None, firmware: Firmware | None = None, process=None,
                 out_dir: Path | None = None) -> dict:
    """process: a board already started with this firmware (e.g. the pytest plugin's); out_dir: the run's
    folder for its image log and results.json (default: a new <bundle>/results/<board>-<backend>/<run id>/)."""
    started = time.time()
    data = load_dataset(bundle.config["dataset"], bundle.config.get("image_size"))
    if not 0 < options.n_images <= len(data.x_test):
        raise SemhilError(f"--images must be within 1..{len(data.x_test)} (the test split of {data.name})")
    images, labels = data.x_test[:options.n_images], data.y_test[:options.n_images]
    firmware = firmware or build_firmware(bundle, board, options.backend)
    _, expected = run_graph(bundle.graph, images)
    if out_dir is None:
        out_dir = new_run_dir(bundle.path / "results" / f"{board.name}-{options.backend}")
        run_id, latest = out_dir.name, True
    else:
        out_dir, run_id, latest = Path(out_dir), new_run_id(), False
        out_dir.mkdir(parents=True, exist_ok=True)
    with nullcontext(process) if process else open_board(board, firmware.path, options.probe, options.port_url, options.place) as process:
        with Dut(process.port, board.name, baud=board.uart_baud, reset=process.restart) as dut:
            info = dut.wait_ready()
            check_firmware(info, bundle, board)
            records = collect_codes(dut, images, labels, expected, out_dir / "images.jsonl", progress, options.resume)
            if options.resume:  # the log may have been whole already: give LAYERS an inference of this session
                dut.infer(images[-1].tobytes(), "the last image again, for its layer times")
            layer_ticks = dut.layer_ticks()  # of the last image
    payloads = np.stack([np.frombuffer(bytes.fromhex(r["code"]), np.uint8) for r in records])
    measured = records[min(options.warmup, len(records) - 1):]  # after warm-up
    timer_hz = int(info["timer_hz"])
    latency = device_latency(np.array([r["ticks"] for r in measured], float), board, timer_hz)
    # records an interrupted run logged before the board reported it lack ticks_after_last_byte
    after = device_latency(np.array([r["ticks_after_last_byte"] for r in measured if "ticks_after_last_byte" in r], float),
                           board, timer_hz)
    stack_peak = max(r["stack_peak_bytes"] for r in records)
    round_trips = [r["round_trip_ms"] for r in measured]
    code_bytes = sent_code_bytes(bundle.graph)
    rows, task_accuracy = score(bundle, images, labels, payloads, options.channels, options.seed, options.pilots)
    result = {
        "run_id": run_id, "run_dir": str(out_dir), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "board": board.name, **({"labgrid_place": options.place.name} if options.place else {}), "bundle": str(bundle.path), "bundle_hash": bundle.hash, "backend": options.backend,
        "n_images": len(records), "bytes_per_image": code_bytes,
        "bit_exact_fraction": float(np.mean([r["bit_exact"] for r in records])),
        "device": {
            "flash_bytes": firmware.memory.flash_bytes, "ram_static_bytes": firmware.memory.ram_static_bytes,
            "stack_peak_bytes": stack_peak, "arena_bytes": int(info["arena_bytes"]),
            "peak_ram_bytes": firmware.memory.ram_static_bytes + stack_peak,
            "latency": {"unit": board.latency_unit, "median": float(np.median(latency)), "p95": float(np.percentile(latency, 95))},
            **({"latency_after_last_byte": {"unit": board.latency_unit, "median": float(np.median(after)),
                                            "p95": float(np.percentile(after, 95))}} if len(after) else {}),
            "activation_lower_bound_bytes": activation_lower_bound(bundle.graph), "macs": total_macs(bundle.graph),
            **micropython_figures(info),
        },
        "layers": layer_rows(bundle.graph, layer_ticks, float(device_latency(np.ones(1), board, timer_hz)[0]), options.backend),
        "wire_ms_per_image": (images[0].size + code_bytes + bundle.graph.get("side_bytes", 0)) * 10 / board.uart_baud * 1000,
        "round_trip_ms": {"median": float(np.median(round_trips)), "p95": float(np.percentile(round_trips, 95))},
        "warnings": board_warnings(info, board),
        "results": rows,
        "task_accuracy": task_accuracy,
        "firmware": str(firmware.path), "board_info": info, "retries": dut.log,
        "started": started, "seconds": round(time.time() - started, 2),
    }
    text = json.dumps(result, indent=2)
    write_atomically(out_dir / "results.json", text)
    if latest:
        mark_latest(out_dir)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text)
    return result

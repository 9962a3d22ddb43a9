"""Benchmarks: print figures, assert nothing. `make bench`.

- training time of the tiny HIL codec and of the default demo codec (from its bundle's metrics)
- `semhil demo` wall time with the cached bundle (the second `make demo`)
- per-image round trip on each board (host wall clock, median over N images) and, in the same
  run, the device's own latency figure (all of it, and the part after the image's last byte
  arrived), so the host/wire overhead shows as the difference
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from codec_train.data import load_dataset
from codec_train.train import PRESETS, cached_bundle, train_bundle
from semhil.boards import load_board
from semhil.build import build_firmware
from semhil.dut import Dut
from semhil.paths import RUNS_DIR
from semhil.runners import BoardProcess

BOARDS = ("native", "qemu-stm32f405", "qemu-cortex-m7")
ROUND_TRIPS = 100


def round_trips(bundle, board_name: str) -> tuple[float, float, float, str]:
    board = load_board(board_name)
    firmware = build_firmware(bundle, board)
    images = load_dataset("mnist5k").x_test[:ROUND_TRIPS]
    with BoardProcess(board, firmware.path) as process, Dut(process.port, board.name) as dut:
        timer_hz = int(dut.wait_ready()["timer_hz"])
        walls, device, after = [], [], []
        for image in images:
            start = time.perf_counter()
            result = dut.infer(image.tobytes())
            walls.append(time.perf_counter() - start)
            device.append(result.ticks * 1e9 / timer_hz)
            after.append(result.ticks_after_last_byte * 1e9 / timer_hz)
    return statistics.median(walls) * 1e3, statistics.median(device), statistics.median(after), board.latency_unit


def main() -> None:
    console = Console()
    table = Table(title="semhil benchmarks (medians; this machine is shared, compare figures from one run)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    with Progress(console=console, transient=True) as progress:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            tiny = train_bundle(PRESETS["tiny"], Path(tmp) / "tiny", progress)
            table.add_row("training, tiny HIL codec", f"{time.perf_counter() - start:.1f} s")
            demo = cached_bundle(PRESETS["demo"], RUNS_DIR, "demo", progress)
            table.add_row("training, default demo codec (4,000 images)", f"{demo.metrics['train_seconds']:.1f} s")
            for name in BOARDS:
                wall_ms, device, after, unit = round_trips(tiny, name)
                table.add_row(f"round trip per image, {name} (host wall clock)", f"{wall_ms:.2f} ms")
                table.add_row(f"device latency per image, {name}", f"{device:,.0f} {unit}")
                table.add_row(f"  of which after the image's last byte, {name}", f"{after:,.0f} {unit}")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from semhil.cli import main; main()", "demo", "--json", "/dev/null"],
                   check=True, capture_output=True)
    table.add_row("semhil demo, bundle cached (second make demo)", f"{time.perf_counter() - start:.1f} s")
    console.print(table)


if __name__ == "__main__":
    main()

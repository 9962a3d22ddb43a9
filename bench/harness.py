"""Harness overhead per image on the native board: the host's round trip minus the device's own
compute time (the native board's latency is in ns), median over N images. `make bench-harness`.
An image goes up in chunks of rows, one chunk in flight (INFO's chunk_rows): the overhead counts
every chunk's exchange.

In the same run, as references: the round trip of INFO (no compute at all), and the same overhead
through an RFC 2217 server on localhost (a board served from another computer). Target: <= 1 ms.
"""
from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from codec_train.data import load_dataset
from codec_train.train import PRESETS, cached_bundle
from semhil.boards import load_board
from semhil.build import build_firmware
from semhil.dut import Dut
from semhil.paths import RUNS_DIR
from semhil.remote import PortServer
from semhil.runners import BoardProcess

TARGET_MS = 1.0


def overheads(url: str, images, timer_hz_out: list, chunk_rows_out: list) -> tuple[list[float], list[float]]:
    """(per-image overhead ms, INFO round trip ms) through the port at url."""
    with Dut(url, "native") as dut:
        info = dut.wait_ready()
        timer_hz = int(info["timer_hz"])
        timer_hz_out.append(timer_hz)
        chunk_rows_out.append(int(info["chunk_rows"]))
        for image in images[:20]:  # warm-up
            dut.infer(image.tobytes())
        overhead, info = [], []
        for image in images:
            start = time.perf_counter()
            result = dut.infer(image.tobytes())
            wall_ms = (time.perf_counter() - start) * 1e3
            overhead.append(wall_ms - result.ticks * 1e3 / timer_hz)
            start = time.perf_counter()
            dut.info()
            info.append((time.perf_counter() - start) * 1e3)
    return overhead, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    console = Console()
    with Progress(console=console, transient=True) as progress:
        bundle = cached_bundle(PRESETS["tiny"], RUNS_DIR, "tiny", progress)
        board = load_board("native")
        firmware = build_firmware(bundle, board)
        images = load_dataset("mnist5k").x_test[:args.images]
        hz: list = []
        chunk_rows: list = []
        with BoardProcess(board, firmware.path) as process:
            direct, info = overheads(process.port, images, hz, chunk_rows)
            with PortServer(process.port) as server:
                remote, remote_info = overheads(server.url, images, hz, chunk_rows)
    table = Table(title=f"harness overhead per image, native board, median of {args.images} images "
                        f"(image {images[0].size} B up in chunks of {chunk_rows[0]} rows, code {bundle.graph['code_bytes']} B down)")
    table.add_column("figure")
    table.add_column("median", justify="right")
    table.add_column("p95", justify="right")
    for name, values in (("overhead: round trip - device compute, pty", direct), ("INFO round trip (no compute), pty", info),
                         ("overhead through RFC 2217 on localhost", remote), ("INFO round trip, RFC 2217 on localhost", remote_info)):
        table.add_row(name, f"{statistics.median(values):.3f} ms", f"{statistics.quantiles(values, n=20)[-1]:.3f} ms")
    median = statistics.median(direct)
    table.caption = (f"overhead / INFO round trip = {median / statistics.median(info):.2f}; target <= {TARGET_MS} ms: "
                     + ("met" if median <= TARGET_MS else "NOT met"))
    console.print(table)


if __name__ == "__main__":
    main()

"""What a labgrid place costs the host: the native board reached directly (its pseudo-terminal), through
`semhil serve` (RFC 2217), and through a labgrid place on localhost (semhil.places.localhost) whose
exporter serves the port with ser2net or passes on a `semhil serve` port.
`make bench-labgrid`. Prints figures, asserts nothing; medians, interleaved rounds in one run.

Figures: host round trip per image (the device's own latency is measured on the board and does not
change), its ratio to the direct port, and the time from acquiring the place to the board's INFO.
The JSON goes to runs/bench/labgrid/<run id>/labgrid.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from codec_train.bundle import load_bundle
from codec_train.data import load_dataset
from codec_train.train import PRESETS, cached_bundle
from semhil.boards import load_board
from semhil.build import build_firmware
from semhil.dut import Dut
from semhil.paths import RUNS_DIR
from semhil.places.board import PlaceBoard, PlaceChoice
from semhil.places.localhost import LocalLab
from semhil.remote import PortServer
from semhil.runners import BoardProcess
from semhil.store import new_run_dir, write_atomically

ROUTES = ("direct pty", "semhil serve", "place, semhil serve", "place, exporter's ser2net")


def round_trips(url: str, images) -> list[float]:
    with Dut(url, "native") as dut:
        dut.wait_ready()
        times = []
        for image in images:
            start = time.perf_counter()
            dut.infer(image.tobytes())
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="a bundle (default: the demo codec)")
    parser.add_argument("--images", type=int, default=40, help="images per route and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    console = Console()
    times = {route: [] for route in ROUTES}
    acquire = []
    with Progress(console=console, transient=True) as progress:
        bundle = load_bundle(args.bundle) if args.bundle else cached_bundle(PRESETS["demo"], RUNS_DIR, "demo", progress)
        board = load_board("native")
        firmware = build_firmware(bundle, board)
        images = load_dataset(bundle.config["dataset"], bundle.config.get("image_size")).x_test[:args.images]
        job = progress.add_task("rounds", total=args.rounds)
        with BoardProcess(board, firmware.path) as exported, BoardProcess(board, firmware.path) as served, \
                PortServer(served.port) as server, tempfile.TemporaryDirectory() as folder:
            exports = {"ser2net": {"RawSerialPort": {"port": exported.port, "speed": board.uart_baud}},
                       "served": {"NetworkSerialPort": {"host": "127.0.0.1", "port": server.tcp_port, "speed": board.uart_baud}}}
            with LocalLab(Path(folder), exports) as lab:
                for group in exports:
                    lab.add_place(group, "native", group)
                for _ in range(args.rounds):
                    times["direct pty"] += round_trips(exported.port, images)
                    times["semhil serve"] += round_trips(server.url, images)
                    for place, route in (("served", "place, semhil serve"), ("ser2net", "place, exporter's ser2net")):
                        start = time.perf_counter()
                        with PlaceBoard(board, firmware.path, PlaceChoice(place, lab.address)) as held:
                            with Dut(held.port, "native") as dut:
                                dut.wait_ready()
                            if place == "ser2net":
                                acquire.append(time.perf_counter() - start)
                            times[route] += round_trips(held.port, images)
                    progress.advance(job)
    medians = {route: statistics.median(values) * 1000 for route, values in times.items()}
    table = Table(title=f"host round trip per image, native board · {bundle.path.name} · medians of {args.rounds} x {args.images} images")
    for name in ("route", "round trip", "÷ direct pty"):
        table.add_column(name, justify="left" if name == "route" else "right")
    for route in ROUTES:
        table.add_row(route, f"{medians[route]:.2f} ms", f"{medians[route] / medians['direct pty']:.1f}")
    console.print(table)
    acquire_ms = statistics.median(acquire) * 1000
    console.print(f"acquire a place, open its serial port (ser2net started by the exporter) and read INFO: median {acquire_ms:.0f} ms")
    out = new_run_dir(RUNS_DIR / "bench" / "labgrid")
    write_atomically(out / "labgrid.json", json.dumps({"bundle": str(bundle.path), "images": args.images, "rounds": args.rounds,
                                                       "round_trip_ms": medians, "acquire_to_info_ms": acquire_ms}, indent=2))
    console.print(f"JSON: {out / 'labgrid.json'}")


if __name__ == "__main__":
    main()

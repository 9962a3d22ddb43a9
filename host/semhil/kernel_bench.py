"""`semhil bench kernels`: the device half's cost per MAC on one board, per backend, in one run.

Each bench writes into a folder of its own, <bundle>/bench/kernels/<run id>/: kernels.json and one
run folder per backend. It never touches the runs in <bundle>/results/."""
from __future__ import annotations

import json
import os
from pathlib import Path

from rich.table import Table

from .boards import load_board
from .channel import IidChannel
from .session import RunOptions, run_on_board
from .store import mark_latest, new_run_dir, write_atomically


def run_kernel_bench(bundle_path: Path | None, board_name: str, images: int, json_path: Path | None, console, progress_bar) -> dict:
    from codec_train.bundle import load_bundle
    from codec_train.train import PRESETS, cached_bundle
    from .paths import RUNS_DIR
    board = load_board(board_name)
    backends = ["standalone"] + (["nnom"] if os.environ.get("NNOM_HOME") else [])
    if "nnom" not in backends:
        console.print("NNOM_HOME is not set: measuring the standalone backend only (see README, NNoM)")
    with progress_bar() as progress:
        bundle = load_bundle(bundle_path) if bundle_path else cached_bundle(PRESETS["demo"], RUNS_DIR, "demo", progress)
        bench_dir = new_run_dir(bundle.path / "bench" / "kernels")
        runs = {backend: run_on_board(bundle, board, RunOptions(n_images=images, channels=(IidChannel(0.0),), backend=backend),
                                      progress=progress, out_dir=bench_dir / f"{board.name}-{backend}")
                for backend in backends}
    figures = {}
    for backend, result in runs.items():
        device = result["device"]
        figures[backend] = {"latency_median": device["latency"]["median"], "unit": device["latency"]["unit"], "macs": device["macs"],
                            "per_mac": device["latency"]["median"] / device["macs"], "arena_bytes": device["arena_bytes"],
                            "stack_peak_bytes": device["stack_peak_bytes"],
                            "peak_ram_bytes": device["arena_bytes"] + device["stack_peak_bytes"],
                            "activation_lower_bound_bytes": device["activation_lower_bound_bytes"],
                            "flash_bytes": device["flash_bytes"], "bit_exact_fraction": result["bit_exact_fraction"],
                            "layers": result["layers"]}
    unit = figures["standalone"]["unit"]
    table = Table(title=f"device half of bundle {bundle.hash} on {board.name}, median of {images} images")
    table.add_column("figure")
    for backend in figures:
        table.add_column(backend, justify="right")
    rows = [(f"{unit}", lambda f: f"{f['latency_median']:,.0f}"), ("MACs", lambda f: f"{f['macs']:,}"),
            (f"{unit} per MAC", lambda f: f"{f['per_mac']:.2f}"),
            ("peak RAM: arena + stack", lambda f: f"{f['arena_bytes']:,} + {f['stack_peak_bytes']:,} B"),
            ("activation lower bound", lambda f: f"{f['activation_lower_bound_bytes']:,} B"),
            ("flash", lambda f: f"{f['flash_bytes']:,} B"), ("codes equal to the simulator", lambda f: f"{f['bit_exact_fraction'] * 100:.0f} %")]
    for name, cell in rows:
        table.add_row(name, *(cell(f) for f in figures.values()))
    out = {"board": board.name, "bundle_hash": bundle.hash, "images": images, "bench_dir": str(bench_dir), "backends": figures}
    if "nnom" in figures:
        out["standalone_over_nnom"] = figures["standalone"]["per_mac"] / figures["nnom"]["per_mac"]
        table.caption = f"standalone / NNoM local backend: {out['standalone_over_nnom']:.2f}x the {unit} per MAC"
    console.print(table)
    text = json.dumps(out, indent=2)
    write_atomically(bench_dir / "kernels.json", text)
    mark_latest(bench_dir)
    console.print(f"figures in {bench_dir / 'kernels.json'}")
    if json_path:
        json_path.write_text(text)
    return out

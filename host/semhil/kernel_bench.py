"""`semhil bench kernels`: what each backend's device half costs per MAC, per board and model, all
measured in one run on the same layer shapes: the standalone kernels, NNoM's local backend (when
NNOM_HOME is set) and the cmsis-nn peer (when CMSIS_HOME is set: the standalone row pipeline with each
conv computed by CMSIS-NN's arm_convolve_wrapper_s8; max-pooling, the per-pixel tail and the packer
stay the standalone kernels). Every backend's codes are checked against the simulator.

A bench writes into a folder of its own: runs/bench/kernels/<run id>/ (with --bundle,
<bundle>/bench/kernels/<run id>/), holding kernels.json and one run folder per board, model and
backend. It never touches the runs in <bundle>/results/."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rich.table import Table

from radio.channel import IidChannel

from .boards import load_board
from .build import ModelTooLarge
from .session import RunOptions, run_on_board
from .store import mark_latest, new_run_dir, write_atomically

BOARDS = ("qemu-stm32f405", "qemu-cortex-m7")
# The models measured by default, and their images: the cost per image is deterministic under QEMU -icount,
# a few images show that it is, and the ResNet-50 device half at 128 px takes seconds of QEMU per image.
MODELS = {"demo": 10, "resnet50-128": 3}
NAMES = {"standalone": "standalone", "nnom": "NNoM local", "cmsis-nn": "CMSIS-NN"}
RATIOS = {"nnom": "standalone_over_nnom", "cmsis-nn": "standalone_over_cmsis_nn"}


def available_backends() -> tuple[list[str], list[str]]:
    """(backends to measure, notes on those left out)."""
    backends, notes = ["standalone"], []
    for backend, variable, section in (("nnom", "NNOM_HOME", "NNoM"), ("cmsis-nn", "CMSIS_HOME", "CMSIS-NN")):
        if os.environ.get(variable):
            backends.append(backend)
        else:
            notes.append(f"{variable} is not set: {backend} is not measured (see README, {section})")
    return backends, notes


def load_models(names: list[str], bundle_path: Path | None, progress) -> dict:
    from codec_train.bundle import load_bundle
    from codec_train.train import PRESETS, cached_bundle
    from codec_train.untrained import cached_photo_bundle
    from .paths import RUNS_DIR
    if bundle_path:
        bundle = load_bundle(bundle_path)
        return {bundle.path.name: bundle}
    makers = {"demo": lambda: cached_bundle(PRESETS["demo"], RUNS_DIR, "demo", progress),
              "resnet50-128": lambda: cached_photo_bundle(RUNS_DIR, 128)}
    return {name: makers[name]() for name in names}


def _figures(result: dict) -> dict:
    device = result["device"]
    return {"status": "measured", "n_images": result["n_images"], "latency_median": device["latency"]["median"],
            "unit": device["latency"]["unit"], "macs": device["macs"], "per_mac": device["latency"]["median"] / device["macs"],
            "arena_bytes": device["arena_bytes"], "stack_peak_bytes": device["stack_peak_bytes"],
            "peak_ram_bytes": device["arena_bytes"] + device["stack_peak_bytes"], "flash_bytes": device["flash_bytes"],
            "activation_lower_bound_bytes": device["activation_lower_bound_bytes"],
            "bit_exact_fraction": result["bit_exact_fraction"], "run_dir": result["run_dir"], "layers": result["layers"]}


def _ratio(a: dict, b: dict, key: str) -> float | None:
    if a.get("status") != "measured" or b.get("status") != "measured" or not b.get(key):
        return None
    return a[key] / b[key]


def _conv_layers(figures: dict) -> list[dict]:
    """Per conv layer: MACs and, per measured backend, its device time (last image) and time per MAC."""
    measured = {name: f for name, f in figures.items() if f["status"] == "measured"}
    if not measured:
        return []
    rows = []
    for i, layer in enumerate(next(iter(measured.values()))["layers"]):
        if layer["op"] != "conv2d":
            continue
        cells = {}
        for name, f in measured.items():
            time_ = f["layers"][i].get("device_time")
            cells[name] = {"status": "measured", "time": time_, "per_mac": None if time_ is None else time_ / layer["macs"]}
        row = {"layer": layer["layer"], "output_shape": layer["output_shape"], "macs": layer["macs"], "backends": cells}
        for peer, key in RATIOS.items():
            row[key] = _ratio(cells["standalone"], cells.get(peer, {}), "per_mac") if "standalone" in cells else None
        rows.append(row)
    return rows


def measure(bundle, board, backend: str, images: int, out_dir: Path, progress) -> dict:
    try:
        result = run_on_board(bundle, board, RunOptions(n_images=images, channels=(IidChannel(0.0),), backend=backend),
                              progress=progress, out_dir=out_dir)
    except ModelTooLarge as e:  # NNoM's whole tensors of a large model on a small board
        return {"status": "does not fit", "needs_ram_bytes": e.ram_bytes, "message": str(e)}
    return _figures(result)


def run_kernel_bench(bundle_path: Path | None, board_names: list[str], model_names: list[str], images: int | None,
                     json_path: Path | None, console, progress_bar) -> dict:
    from .paths import RUNS_DIR
    boards = [load_board(name) for name in board_names or BOARDS]
    backends, notes = available_backends()
    for note in notes:
        console.print(note)
    started = time.time()
    with progress_bar() as progress:
        models = load_models(model_names or list(MODELS), bundle_path, progress)
        root = (bundle_path and next(iter(models.values())).path) or RUNS_DIR
        bench_dir = new_run_dir(Path(root) / "bench" / "kernels")
        cells = []
        for model, bundle in models.items():
            n = images or MODELS.get(model, 10)
            for board in boards:
                figures = {backend: measure(bundle, board, backend, n, bench_dir / f"{board.name}-{model}-{backend}", progress)
                           for backend in backends}
                cell = {"board": board.name, "model": model, "bundle": str(bundle.path), "bundle_hash": bundle.hash, "images": n,
                        "unit": board.latency_unit, "backends": figures, "layers": _conv_layers(figures)}
                for peer, key in RATIOS.items():
                    cell[key] = _ratio(figures["standalone"], figures.get(peer, {}), "per_mac")
                cells.append(cell)
    out = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "seconds": round(time.time() - started, 1),
           "bench_dir": str(bench_dir), "boards": [b.name for b in boards], "backends": backends, "notes": notes,
           "models": {model: {"bundle": str(b.path), "bundle_hash": b.hash} for model, b in models.items()}, "results": cells}
    print_tables(out, console)
    text = json.dumps(out, indent=2)
    write_atomically(bench_dir / "kernels.json", text)
    mark_latest(bench_dir)
    console.print(f"figures in {bench_dir / 'kernels.json'}")
    if json_path:
        write_atomically(Path(json_path), text)
    return out


def _cell(f: dict | None, key: str = "per_mac") -> str:
    if not f:
        return "-"
    if f["status"] == "does not fit":
        return f"does not fit (needs {f['needs_ram_bytes'] / 1024:,.1f} KB)" if f.get("needs_ram_bytes") else "does not fit"
    return "-" if f.get(key) is None else f"{f[key]:.2f}"


def _times(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _exact(f: dict) -> str:
    if f["status"] != "measured":
        return ""
    share = f["bit_exact_fraction"] * 100
    return f"{share:.0f} %" if share == 100 else f"[bold red]{share:.1f} %[/]"


def print_tables(out: dict, console) -> None:
    backends = out["backends"]
    peers = [b for b in backends if b in RATIOS]
    for model in out["models"]:
        cells = [c for c in out["results"] if c["model"] == model]
        unit = cells[0]["unit"] if cells else "instructions"
        summary = Table(title=f"{model}: {unit} per MAC of the whole device half (median over the images)")
        summary.add_column("board")
        for b in backends:
            summary.add_column(NAMES[b], justify="right")
        for p in peers:
            summary.add_column(f"standalone / {NAMES[p]}", justify="right")
        summary.add_column("codes equal to the simulator", justify="right")
        for c in cells:
            exact = ", ".join(f"{NAMES[b]} {_exact(c['backends'][b])}" for b in backends if c["backends"][b]["status"] == "measured")
            summary.add_row(f"{c['board']} ({c['images']} images)", *(_cell(c["backends"][b]) for b in backends),
                            *(_times(c[RATIOS[p]]) for p in peers), exact)
        summary.caption = ("lower is better; a ratio above 1 means the standalone kernels take more per MAC. CMSIS-NN: the "
                           "standalone row pipeline with each conv computed by CMSIS-NN 5.9.0's arm_convolve_wrapper_s8; "
                           "max-pool, the per-pixel tail and the packer stay the standalone kernels" if "cmsis-nn" in backends
                           else "lower is better; a ratio above 1 means the standalone kernels take more per MAC")
        console.print(summary)
        for c in cells:
            console.print(layer_table(c, backends, peers))


def layer_table(cell: dict, backends: list[str], peers: list[str]) -> Table:
    table = Table(title=f"{cell['model']} on {cell['board']}: each conv layer ({cell['unit']} of the last image, per MAC)")
    table.add_column("layer")
    table.add_column("output", justify="right")
    table.add_column("MACs", justify="right")
    for b in backends:
        table.add_column(NAMES[b], justify="right")
    for p in peers:
        table.add_column(f"standalone / {NAMES[p]}", justify="right")
    for row in cell["layers"]:
        shown = []
        for b in backends:
            f = row["backends"].get(b)
            shown.append(_cell(cell["backends"][b]) if f is None else
                         f"{f['time']:,.0f} ({f['per_mac']:.2f})" if f["time"] is not None else "-")
        table.add_row(row["layer"], "x".join(map(str, row["output_shape"])), f"{row['macs']:,}", *shown,
                      *(_times(row[RATIOS[p]]) for p in peers))
    figures = cell["backends"]
    table.caption = "; ".join(f"{NAMES[b]}: peak RAM {f['peak_ram_bytes']:,} B (arena + stack), flash {f['flash_bytes']:,} B"
                              for b, f in figures.items() if f["status"] == "measured")
    return table

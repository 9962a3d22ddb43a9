"""The device half as a MicroPython native module against semhil's C firmware, on the same core.
`make bench-micropython` (needs MICROPY_HOME). Prints figures, asserts nothing; medians over the images.

For the demo codec (or --bundle) it runs, in this one run, on QEMU mps2-an500 (Cortex-M7, -icount shift=0):
- the C firmware on qemu-cortex-m7 (standalone backend): the reference;
- the module on micropython-qemu-m7, built -O2 (semhil's default) and -Os (dynruntime.mk's default);
- the module on micropython-unix (microseconds of this computer, for the end-to-end time only).
Figures: instructions per image and their ratio to the C firmware (the target is <= 1.15), the module's
size, the MicroPython heap in use with it loaded, end to end per image (host round trip).
The JSON goes to runs/bench/micropython/<run id>/micropython.json.
"""
from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from codec_train.bundle import load_bundle
from codec_train.train import PRESETS, cached_bundle
from semhil.boards import load_board
from semhil.micropython.natmod import module_firmware
from semhil.paths import RUNS_DIR
from semhil.session import RunOptions, run_on_board
from semhil.store import new_run_dir, write_atomically

TARGET = 1.15  # module instructions per image / C firmware's, same core


def measure(bundle, board_name: str, images: int, opt_flags: list[str] | None = None) -> dict:
    board = load_board(board_name)
    firmware = module_firmware(bundle, board, opt_flags) if opt_flags else None
    result = run_on_board(bundle, board, RunOptions(n_images=images, warmup=2, channels=()), firmware=firmware)
    device = result["device"]
    return {"board": board_name, "flags": " ".join(opt_flags or []), "unit": device["latency"]["unit"],
            "latency_median": device["latency"]["median"], "macs": device["macs"],
            "module_bytes": device.get("module_bytes"), "flash_bytes": device["flash_bytes"],
            "heap_used_bytes": device.get("heap_used_bytes"), "stack_peak_bytes": device["stack_peak_bytes"],
            "end_to_end_ms": result["round_trip_ms"]["median"], "bit_exact_fraction": result["bit_exact_fraction"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="a bundle (default: the demo codec)")
    parser.add_argument("--images", type=int, default=30)
    args = parser.parse_args()
    console = Console()
    with Progress(console=console, transient=True) as progress:
        bundle = load_bundle(args.bundle) if args.bundle else cached_bundle(PRESETS["demo"], RUNS_DIR, "demo", progress)
        job = progress.add_task("measuring", total=4)
        rows = []
        for board, flags in (("qemu-cortex-m7", None), ("micropython-qemu-m7", ["-O2"]), ("micropython-qemu-m7", ["-Os"]),
                             ("micropython-unix", ["-O2"])):
            rows.append(measure(bundle, board, args.images, flags))
            progress.advance(job)
    reference = rows[0]["latency_median"]
    for row in rows:
        row["ratio_to_c_firmware"] = row["latency_median"] / reference if row["unit"] == rows[0]["unit"] else None
    table = Table(title=f"MicroPython module vs C firmware · {bundle.path.name} · medians over {args.images} images")
    for name in ("board", "build", "per image", "per MAC", "÷ C firmware", "module", "heap in use", "stack peak",
                 "end to end", "bit-exact"):
        table.add_column(name, justify="left" if name in ("board", "build") else "right")
    for row in rows:
        ratio = row["ratio_to_c_firmware"]
        table.add_row(row["board"], row["flags"] or "C firmware -O2", f"{row['latency_median']:,.0f} {row['unit']}",
                      f"{row['latency_median'] / row['macs']:.2f}", "" if ratio is None else f"{ratio:.3f}",
                      "" if row["module_bytes"] is None else f"{row['module_bytes']:,} B",
                      "" if row["heap_used_bytes"] is None else f"{row['heap_used_bytes']:,} B", f"{row['stack_peak_bytes']:,} B",
                      f"{row['end_to_end_ms']:.1f} ms", f"{row['bit_exact_fraction']:.0%}")
    console.print(table)
    console.print(f"target: module instructions per image <= {TARGET} x the C firmware's on the same core")
    out = new_run_dir(RUNS_DIR / "bench" / "micropython")
    write_atomically(out / "micropython.json", json.dumps({"bundle": str(bundle.path), "images": args.images, "target": TARGET,
                                                           "rows": rows}, indent=2))
    console.print(f"JSON: {out / 'micropython.json'}")


if __name__ == "__main__":
    main()

"""Streaming device half: memory, instructions and the compute left after an image's last byte.
`make bench-streaming`. Prints figures, asserts nothing; every figure is a median over the images.

For each model (the demo codec; ResNet-50 stem + encoder on RGB at 128 and 224 px; MobileNetV2 at
128 px) it runs, in this one run:
- the standalone backend (row bands, the image streamed in chunks) on qemu-stm32f405: peak RAM
  (static + the stack the board measured), flash, instructions per image, and the instructions after
  the last byte of the image arrived;
- the same firmware on qemu-cortex-m7, next to the reference there (the board with room for whole
  tensors): semhil's whole-tensor kernels as of --baseline (a commit before streaming, built from a git
  worktree under /tmp) and NNoM (whole tensors, when NNOM_HOME is set). The ratios compare one board.
The JSON goes to runs/bench/streaming/<run id>/streaming.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from codec_train.bundle import load_bundle
from codec_train.train import PRESETS, cached_bundle
from codec_train.untrained import photo_folder, untrained_resnet_bundle
from semhil.boards import load_board
from semhil.errors import SemhilError
from semhil.paths import REPO as REPO_ROOT, RUNS_DIR
from semhil.session import RunOptions, run_on_board
from semhil.store import new_run_dir, write_atomically

WHOLE_TENSOR_COMMIT = "972f955"  # the last semhil whose standalone backend ran whole tensors
MODELS = {"demo": None, "resnet50-128": ("resnet50", 128), "resnet50-224": ("resnet50", 224), "mobilenetv2-128": ("mobilenetv2", 128)}
TARGETS = "peak RAM <= 40 KB at 128 px, <= 64 KB at 224 px, demo <= 8 KB; instructions <= 1.05 x whole-tensor; " \
          "after last byte <= 10 % at 128 px; flash <= 1.10 x whole-tensor"


def bundles(work: Path, progress: Progress) -> dict:
    photos = f"folder:{photo_folder(work / 'photos', per_class=8)}"
    out = {"demo": cached_bundle(PRESETS["demo"], RUNS_DIR, "demo", progress)}
    for name, spec in MODELS.items():
        if spec:
            out[name] = untrained_resnet_bundle(work / name, spec[1], photos, spec[0])
    return out


def copy_bundle(bundle, path: Path):
    """A copy without build/ and results/: each run builds from clean sources of its own."""
    shutil.copytree(bundle.path, path, ignore=shutil.ignore_patterns("build", "results", "device", "sizer"))
    return load_bundle(path)


def measure(bundle, board: str, backend: str, images: int) -> dict:
    result = run_on_board(bundle, load_board(board), RunOptions(n_images=images, backend=backend, warmup=1, channels=()))
    device = result["device"]
    return {"flash_bytes": device["flash_bytes"], "ram_static_bytes": device["ram_static_bytes"],
            "peak_ram_bytes": device["ram_static_bytes"] + device["stack_peak_bytes"],
            "instructions": device["latency"]["median"],
            "after_last_byte": device.get("latency_after_last_byte", {}).get("median"),
            "bit_exact_fraction": result["bit_exact_fraction"]}


def measure_at_commit(commit: str, bundle, board: str, images: int, work: Path) -> dict:
    """The same model run by semhil at `commit` (a git worktree under work), through its own CLI."""
    tree = work / f"semhil-{commit}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True)
    out = work / f"{bundle.path.name}-{commit}-{board}.json"
    env = {**os.environ, "PYTHONPATH": f"{tree / 'host'}:{tree}"}
    done = subprocess.run([sys.executable, "-c", "from semhil.cli import main; main()", "run", str(bundle.path), "--board", board,
                           "--images", str(images), "--ber", "0", "--json", str(out)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    device = json.loads(out.read_text())["device"]
    return {"flash_bytes": device["flash_bytes"], "ram_static_bytes": device["ram_static_bytes"],
            "peak_ram_bytes": device["ram_static_bytes"] + device["stack_peak_bytes"], "instructions": device["latency"]["median"]}


def ratio(a, b) -> str:
    return f"{a / b:.3f}" if a and b else "-"


def kb(n) -> str:
    return f"{n / 1024:,.1f} KB" if n else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6, help="images per model and board (median over them)")
    parser.add_argument("--baseline", default=WHOLE_TENSOR_COMMIT, help="the whole-tensor semhil commit to compare with")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    args = parser.parse_args()
    console = Console()
    figures = {}
    with tempfile.TemporaryDirectory(prefix="semhil-bench-streaming-") as tmp, Progress(console=console) as progress:
        work = Path(tmp)
        all_bundles = bundles(work, progress)
        names = [n for n in args.models.split(",") if n]
        job = progress.add_task("models", total=len(names))
        try:
            for name in names:
                bundle = all_bundles[name]
                row = {"stream_f405": measure(copy_bundle(bundle, work / f"{name}-f405"), "qemu-stm32f405", "standalone", args.images),
                       "stream_m7": measure(copy_bundle(bundle, work / f"{name}-m7"), "qemu-cortex-m7", "standalone", args.images),
                       "whole_m7": measure_at_commit(args.baseline, copy_bundle(bundle, work / f"{name}-base"), "qemu-cortex-m7",
                                                     args.images, work)}
                if os.environ.get("NNOM_HOME"):
                    try:
                        row["nnom_m7"] = measure(copy_bundle(bundle, work / f"{name}-nnom"), "qemu-cortex-m7", "nnom", args.images)
                    except SemhilError as e:
                        row["nnom_m7"] = {"error": str(e)[:200]}
                figures[name] = row
                progress.advance(job)
        finally:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "prune"], capture_output=True)
    table = Table(title=f"streaming device half, medians of {args.images} images")
    table.add_column("figure")
    for name in figures:
        table.add_column(name, justify="right")
    rows = {  # figure: how to show it from one model's measurements
        "peak RAM, qemu-stm32f405 (static + stack)": lambda r: kb(r["stream_f405"]["peak_ram_bytes"]),
        "flash, qemu-stm32f405": lambda r: kb(r["stream_f405"]["flash_bytes"]),
        "instructions per image, qemu-stm32f405": lambda r: f"{r['stream_f405']['instructions']:,.0f}",
        "  after the image's last byte": lambda r: f"{r['stream_f405']['after_last_byte'] / r['stream_f405']['instructions']:.1%}",
        "instructions vs whole-tensor (qemu-cortex-m7)": lambda r: ratio(r["stream_m7"]["instructions"], r["whole_m7"].get("instructions")),
        "flash vs whole-tensor (qemu-cortex-m7)": lambda r: ratio(r["stream_m7"]["flash_bytes"], r["whole_m7"].get("flash_bytes")),
        "whole-tensor peak RAM (qemu-cortex-m7)": lambda r: r["whole_m7"].get("error", "")[:40] or kb(r["whole_m7"]["peak_ram_bytes"]),
        "NNoM peak RAM (qemu-cortex-m7)": lambda r: (r.get("nnom_m7") or {"error": "NNOM_HOME unset"}).get("error", "")[:40]
        or kb(r["nnom_m7"]["peak_ram_bytes"]),
        "bit-exact": lambda r: f"{min(r['stream_f405']['bit_exact_fraction'], r['stream_m7']['bit_exact_fraction']):.0%}",
    }
    for figure, show in rows.items():
        table.add_row(figure, *(show(row) for row in figures.values()))
    table.caption = f"targets: {TARGETS}"
    console.print(table)
    out_dir = new_run_dir(RUNS_DIR / "bench" / "streaming")
    write_atomically(out_dir / "streaming.json", json.dumps({"images": args.images, "baseline": args.baseline, "targets": TARGETS,
                                                             "models": figures}, indent=2))
    console.print(f"JSON: {out_dir / 'streaming.json'}")


if __name__ == "__main__":
    main()

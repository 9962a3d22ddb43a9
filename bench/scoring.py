"""Scoring at scale: `semhil eval` of the demo bundle on 10,000 images at 5 BERs (wall time and peak RSS of
the child process) and the edge decode rate (decoder + task tail at one BER), medians of --runs runs.
`make bench-host`.

The 10,000 images: no MNIST test split is on disk, so they are made from the 5,000 images of mnist5k
(its 4,000 training and 1,000 test images), each twice, the second copy shifted one pixel to the right.
They are written as MNIST idx files to a temporary folder and read with the `mnist:<dir>` dataset spec
(the idx training split holds mnist5k's training images; eval reads only the test split). The demo
bundle trained on 4,000 of these images, so the accuracies printed are not test accuracies: this
measures time and memory.

--code DIR measures another checkout's semhil and codec_train (e.g. a git worktree of an older commit)
with this script, for before/after figures; the JSON names the code each child imported. --busy-cores N
keeps N cores busy meanwhile (spinning processes): the figures on a machine someone else is using too.
The children's output is kept beside the JSON (eval-<k>.log, edge.log).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
BERS = "0,0.001,0.01,0.05,0.1"
EDGE_BER = 0.01
TARGETS = {"eval_seconds": 60.0, "eval_peak_rss_bytes": 1e9, "edge_images_per_second": 2000.0}
MEASURES = {  # what, unit, scale to the unit, digits, which way the target goes
    "eval_seconds": ("semhil eval, 5 BERs: wall time", "s", 1.0, 1, "<="),
    "eval_peak_rss_bytes": ("semhil eval, 5 BERs: peak RSS", "MB", 1e-6, 0, "<="),
    "edge_images_per_second": (f"edge decode at BER {EDGE_BER:g}", "images/s", 1.0, 0, ">="),
}


# The 10,000 images

def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, np.uint8).tobytes())


def shifted_right(images: np.ndarray) -> np.ndarray:
    out = np.zeros_like(images)
    out[:, :, 1:] = images[:, :, :-1]
    return out


def write_ten_thousand(directory: Path) -> int:
    """MNIST idx files in `directory` whose test split is mnist5k's 5,000 images twice (see the docstring)."""
    from codec_train.data import MNIST_FILES, load_mnist5k
    data = load_mnist5k()
    images = np.concatenate([data.x_train, data.x_test])[..., 0]
    labels = np.concatenate([data.y_train, data.y_test])
    splits = {"train": (data.x_train[..., 0], data.y_train),
              "test": (np.concatenate([images, shifted_right(images)]), np.concatenate([labels, labels]))}
    for split, (x, y) in splits.items():
        images_name, labels_name = MNIST_FILES[split]
        write_idx(directory / images_name, x)
        write_idx(directory / labels_name, y)
    return len(splits["test"][0])


# Measuring, each in a child process that imports the code measured

def child_env(code: Path) -> dict:
    env = dict(os.environ)
    if code != REPO:
        env["PYTHONPATH"] = os.pathsep.join([str(code / "host"), str(code), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@contextmanager
def busy_cores(n: int):
    """n processes spinning meanwhile: the figures on a machine someone else is using too."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def run_child(argv: list[str], env: dict, log: Path, cwd: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of a child process run in `cwd`; its output goes to `log`."""
    with log.open("w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    if child.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} ... failed ({child.returncode}); see {log}")
    return seconds, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


# `python -c` puts the working directory first on sys.path: the children run in a folder without code.
EVAL = ("import json, sys, codec_train, semhil; print(json.dumps([codec_train.__file__, semhil.__file__])); "
        "from semhil.cli import main; main()")


def measure_eval(bundle: Path, dataset_dir: Path, env: dict, log: Path, json_path: Path) -> dict:
    argv = [sys.executable, "-c", EVAL, "eval", str(bundle), "--dataset", f"mnist:{dataset_dir}", "--ber", BERS,
            "--json", str(json_path)]
    seconds, rss = run_child(argv, env, log, json_path.parent)
    result = json.loads(json_path.read_text())
    codec_train_file, semhil_file = json.loads(log.read_text().splitlines()[0])
    return {"seconds": seconds, "peak_rss_bytes": rss, "n_images": result["n_images"],
            "imported": {"codec_train": codec_train_file, "semhil": semhil_file},
            "accuracy": {str(row["ber"]): row["accuracy"] for row in result["results"]},
            "float_accuracy": {str(row["ber"]): row["float_accuracy"] for row in result["results"]}}


def measure_edge(bundle: Path, dataset_dir: Path, runs: int, env: dict, log: Path) -> dict:
    argv = [sys.executable, __file__, "--edge-child", str(bundle), str(dataset_dir), str(runs)]
    run_child(argv, env, log, dataset_dir)
    return json.loads(log.read_text().splitlines()[-1])


def edge_child(bundle_path: str, dataset_dir: str, runs: int) -> None:
    """Prints, as JSON: the edge decode rate of `runs` runs at EDGE_BER and the code imported."""
    import codec_train
    import semhil
    import torch
    from codec_train.bundle import load_bundle
    from codec_train.data import load_dataset
    from codec_train.edge import predict_from_payloads, transmit
    from codec_train.simulate import run_graph
    from radio.channel import IidChannel
    bundle = load_bundle(bundle_path)
    task, codec = bundle.load_models()
    images = load_dataset(f"mnist:{dataset_dir}").x_test
    received, ber = transmit(codec, run_graph(bundle.graph, images)[1], IidChannel(EDGE_BER), 0)
    predict_from_payloads(task, codec, received[:256], ber[:256])  # warm-up
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        predict_from_payloads(task, codec, received, ber)
        rates.append(len(received) / (time.perf_counter() - started))
    print(json.dumps({"images_per_second": rates, "n_images": len(received), "ber": EDGE_BER,
                      "torch_threads": torch.get_num_threads(),
                      "imported": {"codec_train": codec_train.__file__, "semhil": semhil.__file__}}))


# Reporting

def checkout(code: Path) -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(code), *args], capture_output=True, text=True).stdout.strip()
    return {"path": str(code), "commit": git("rev-parse", "HEAD"), "changed_files": git("status", "--porcelain").splitlines()}


def run_values(evals: list[dict], edge: dict) -> dict[str, list[float]]:
    return {"eval_seconds": [e["seconds"] for e in evals], "eval_peak_rss_bytes": [e["peak_rss_bytes"] for e in evals],
            "edge_images_per_second": edge["images_per_second"]}


def met(key: str, value: float) -> bool:
    return value >= TARGETS[key] if MEASURES[key][4] == ">=" else value <= TARGETS[key]


def print_table(console: Console, values: dict, medians: dict, n_images: int, cores: int, busy: int) -> None:
    table = Table(title=f"scoring at scale: {n_images:,} images (mnist5k twice, see --help), {cores} cores, {busy} kept busy")
    for column in ("measure", "runs", "median", "target", "met"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for key, (what, unit, scale, digits, sense) in MEASURES.items():
        def show(value):
            return f"{value * scale:,.{digits}f}"
        table.add_row(what, ", ".join(map(show, values[key])), f"{show(medians[key])} {unit}",
                      f"{sense} {show(TARGETS[key])} {unit}", "[green]yes[/]" if met(key, medians[key]) else "[red]no[/]")
    console.print(table)


def measure_all(code: Path, runs: int, busy: int, logs: Path, console: Console) -> tuple[Path, list[dict], dict, int]:
    """(the bundle, the eval runs, the edge decode runs, the number of images) of the code in `code`."""
    from codec_train.train import PRESETS, cached_bundle
    from semhil.paths import RUNS_DIR
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        bundle = cached_bundle(PRESETS["demo"], RUNS_DIR, "demo", progress).path  # trains it the first time (minutes)
        dataset_dir = Path(tmp) / "mnist10k"
        dataset_dir.mkdir()
        n_images = write_ten_thousand(dataset_dir)
        console.print(f"{n_images:,} test images: mnist5k's 5,000 images, then each shifted one pixel right, as idx files in {dataset_dir}")
        env = child_env(code)
        with busy_cores(busy):
            job = progress.add_task("semhil eval", total=runs)
            evals = []
            for k in range(runs):
                evals.append(measure_eval(bundle, dataset_dir, env, logs / f"eval-{k}.log", Path(tmp) / f"eval-{k}.json"))
                progress.advance(job)
            job = progress.add_task("edge decode", total=1)
            edge = measure_edge(bundle, dataset_dir, runs, env, logs / "edge.log")
            progress.advance(job)
    return bundle, evals, edge, n_images


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--edge-child":
        return edge_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose semhil and codec_train are measured (default: this one)")
    parser.add_argument("--busy-cores", type=int, default=0, help="keep this many cores busy meanwhile (default 0)")
    parser.add_argument("--json", type=Path, help="write the figures here (default: runs/bench/scoring/<run id>/scoring.json, "
                                                  "a new folder per run)")
    args = parser.parse_args()
    if args.json and args.json.exists():
        sys.exit(f"{args.json} exists: give a new path (a run never replaces another's file)")
    from semhil.paths import RUNS_DIR
    from semhil.store import mark_latest, new_run_dir, write_atomically
    json_path = args.json or new_run_dir(RUNS_DIR / "bench" / "scoring") / "scoring.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    console, cores, code, load_before = Console(), os.cpu_count(), args.code.resolve(), os.getloadavg()
    console.print(f"{cores} cores (os.cpu_count()), {args.busy_cores} kept busy, load average {load_before[0]:.2f}; "
                  f"measuring the code in {code}")
    bundle, evals, edge, n_images = measure_all(code, args.runs, args.busy_cores, json_path.parent, console)
    values = run_values(evals, edge)
    medians = {key: statistics.median(runs) for key, runs in values.items()}
    print_table(console, values, medians, n_images, cores, args.busy_cores)
    console.print(f"imported by the children: {evals[0]['imported']} (eval), {edge['imported']} (edge decode)")
    record = {"cores": cores, "busy_cores": args.busy_cores, "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "code": checkout(code), "bundle": str(bundle), "dataset": "mnist5k x 2 (second copy shifted one pixel right)", "n_images": n_images,
              "bers": BERS, "runs": values, "medians": medians, "targets": TARGETS,
              "met": {key: met(key, medians[key]) for key in TARGETS}, "eval_runs": evals, "edge": edge}
    write_atomically(json_path, json.dumps(record, indent=2))
    if not args.json:
        mark_latest(json_path.parent)
    console.print(f"written: {json_path}")


if __name__ == "__main__":
    main()

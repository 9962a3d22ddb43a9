"""Ablations of the SemanticNN codec on mnist5k: prints one table, asserts nothing. `make bench-codec`.

Each variant trains from the demo preset with one thing changed, then is scored on the 1,000 test
images with the int8 simulator's codes under i.i.d. bit errors, averaged over --channel-seeds
realisations of the channel (the same for every variant: at 5 % BER one realisation moves accuracy
by about half a point). With --seeds N every variant trains N times (training seeds 0..N-1) and the
table gives the mean; one run's accuracy on 1,000 images has a standard error of about 0.6 point.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from codec_train.train import PRESETS, train_bundle
from radio.channel import IidChannel
from semhil.scoring import evaluate_bundle

BERS = (0.0, 0.001, 0.01, 0.05)
BASE = PRESETS["demo"]
VARIANTS = {
    "full SemanticNN": {},
    "without stage 1": {"stage1_epochs": 0},
    "without XAI": {"gamma_xai": 0.0},
    "without attention": {"attention": False},
    "trained at 0.01 % BER": {"channel": "iid:0.0001"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--seeds", type=int, default=1, help="training runs per variant (default 1)")
    parser.add_argument("--channel-seeds", type=int, default=5, help="channel realisations averaged per run (default 5)")
    parser.add_argument("--channel", default=BASE.channel, help=f"training channel of every variant but the fixed-BER one (default {BASE.channel})")
    args = parser.parse_args()
    console = Console()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console, transient=True) as progress:
        for name, change in VARIANTS.items():
            runs = []
            for seed in range(args.seeds):
                config = dataclasses.replace(BASE, **{"channel": args.channel, **change}, seed=seed)
                bundle = train_bundle(config, Path(tmp) / f"{name.replace(' ', '-')}-{seed}", progress)
                results = [evaluate_bundle(bundle, None, [IidChannel(b) for b in BERS], use_float=False, seed=len(BERS) * k)
                           for k in range(args.channel_seeds)]
                runs.append({"accuracy": {str(b): float(np.mean([r["results"][i]["accuracy"] for r in results]))
                                          for i, b in enumerate(BERS)},
                             "train_seconds": bundle.metrics["train_seconds"]})
                console.print(f"{name}, seed {seed}: {runs[-1]}")
            rows[name] = {"accuracy": {str(b): float(np.mean([r["accuracy"][str(b)] for r in runs])) for b in BERS},
                          "train_seconds": float(np.median([r["train_seconds"] for r in runs])),
                          "bytes_per_image": results[0]["bytes_per_image"], "runs": runs}
    table = Table(title=f"SemanticNN ablations, mnist5k, 1,000 test images, int8 device half, i.i.d. bit errors, "
                        f"mean of {args.seeds} training run(s) x {args.channel_seeds} channel realisations")
    table.add_column("variant")
    for ber in BERS:
        table.add_column(f"BER {ber * 100:g} %", justify="right")
    table.add_column("training", justify="right")
    for name, row in rows.items():
        table.add_row(name, *(f"{row['accuracy'][str(b)] * 100:.1f} %" for b in BERS), f"{row['train_seconds']:.0f} s")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

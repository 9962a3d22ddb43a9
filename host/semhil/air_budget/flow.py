"""`semhil compare --air-bytes`: size, train, protect, run on the board, score over the link, report.

<out>/sweep.json, runs/, ...               the board runs (semhil.sweep: resumable, codes checked bit for bit)
<out>/scored/<budget>B-<pipeline>.json     each pipeline's row, written as soon as it is scored
<out>/compare.json                         every pipeline at every budget; <out>/report/: the tables and curves
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from codec_train.bundle import protected_bundle
from codec_train.data import load_dataset
from codec_train.train import PRESETS, cached_bundle
from radio.fec import Fec
from radio.link import Link

from ..paths import RUNS_DIR
from ..store import write_atomically
from ..sweep import SweepPlan, run_key, run_sweep
from .pipelines import Pipeline, SizedPipeline, size_pipeline
from .scoring import score_over_link


@dataclass(frozen=True)
class AirBudgetPlan:
    dataset: str
    image_size: int | None
    preset: str
    pipelines: tuple[Pipeline, ...]
    budgets: tuple[int, ...]  # air bytes per image
    link: Link                # the radio; each axis sets the CRC and the loss, each pipeline its ARQ
    board: str
    backend: str
    images: int
    bers: tuple[float, ...]    # scored with the CRC off
    losses: tuple[float, ...]  # packet loss rates, scored with the CRC on
    seed: int = 0


def board_codes(out: Path, bundle, board: str, backend: str) -> np.ndarray:
    """The codes the board sent for the bundle's images, in order, from its run's image log."""
    log = out / "runs" / run_key(bundle, board, backend) / "images.jsonl"
    return np.stack([np.frombuffer(bytes.fromhex(json.loads(line)["code"]), np.uint8) for line in log.read_text().splitlines()])


def compare_at_air_bytes(plan: AirBudgetPlan, out: Path, resume: bool, progress: Progress, map_path: Path | None = None) -> list[dict]:
    """Every pipeline sized to every budget, trained, run on the board and scored over the link; one row each."""
    data = load_dataset(plan.dataset, plan.image_size)
    base = dataclasses.replace(PRESETS[plan.preset], dataset=plan.dataset, image_size=plan.image_size)
    sized = [size_pipeline(p, base, budget, plan.link, data.image_shape, data.n_classes) for budget in plan.budgets for p in plan.pipelines]
    bundles = train_and_protect(sized, plan.preset, progress)
    unique = list({b.hash: b for b in bundles}.values())
    sweep = SweepPlan(tuple(str(b.path) for b in unique), tuple(b.hash for b in unique), (plan.board,), plan.backend,
                      ("iid:0",), plan.images, plan.seed)
    runs = {r["bundle_hash"]: r for r in run_sweep(sweep, unique, out, resume, progress, map_path)}
    labels = data.y_test[:plan.images]
    scored_dir = out / "scored"
    scored_dir.mkdir(parents=True, exist_ok=True)
    job = progress.add_task("score over the link", total=len(sized))
    rows = []
    for s, bundle in zip(sized, bundles, strict=True):
        path = scored_dir / f"{s.budget}B-{s.pipeline.name.replace(':', '').replace(',', '-').replace('=', '')}.json"
        if resume and path.exists() and json.loads(path.read_text()).get("bundle_hash") == bundle.hash:
            row = json.loads(path.read_text())
        else:
            run = runs[bundle.hash]
            payloads = board_codes(out, bundle, plan.board, plan.backend)
            results = score_over_link(bundle, labels, payloads, plan.link, s.pipeline.retransmissions, plan.bers, plan.losses, plan.seed)
            row = {**s.describe(), "bundle": str(bundle.path), "bundle_hash": bundle.hash, "radio": plan.link.radio.name,
                   "link": plan.link.describe(), "board": run["board"], "backend": run["backend"], "n_images": run["n_images"],
                   "bit_exact_fraction": run["bit_exact_fraction"], "device": run["device"], "results": results}
            write_atomically(path, json.dumps(row, indent=2))
        rows.append(row)
        progress.advance(job)
    return rows


def train_and_protect(sized: list[SizedPipeline], preset: str, progress: Progress) -> list:
    """Each pipeline's bundle: its codec trained (once per configuration), then protected by its FEC."""
    job = progress.add_task("train codecs", total=len(sized))
    bundles = []
    for s in sized:
        bundle = cached_bundle(s.config, RUNS_DIR, f"{preset}-{s.pipeline.codec}", progress)
        if s.fec != Fec():
            bundle = protected_bundle(bundle, s.fec)
        bundles.append(bundle)
        progress.advance(job)
    return bundles

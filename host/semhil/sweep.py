"""`semhil sweep`: bundles x boards x channels. Each bundle runs once on each board (the channel is
the host's, so one set of codes serves every BER); everything is written as it arrives, so a killed
sweep resumes where it stopped and ends with the results an uninterrupted one would have.

<out>/sweep.json                        the plan: bundles, boards, backend, channels, images, seed
<out>/results.jsonl                     one line per run x channel, appended as each run is scored
<out>/<run>.json                        each run's results JSON (the schema of `semhil run --json`)
<out>/runs/<run>/images.jsonl           each image's code, as it arrives
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.progress import Progress
from rich.table import Table

from radio.channel import parse_channel

from .boards import load_board
from .discovery import how_to_reach
from .errors import SemhilError
from .jsonl import append_line, read_whole_lines
from .report import latency_cells
from .session import RunOptions, run_on_board
from .store import write_atomically


@dataclass(frozen=True)
class SweepPlan:
    bundles: tuple[str, ...]        # paths
    bundle_hashes: tuple[str, ...]
    boards: tuple[str, ...]
    backend: str
    channels: tuple[str, ...]       # channel specs (radio.channel.parse_channel), e.g. iid:0.01
    images: int
    seed: int
    pilots: str | None = None       # pilot spec (radio.pilots.parse_pilots), or None: the channel's BER

    @classmethod
    def from_json(cls, path: Path) -> SweepPlan:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except (json.JSONDecodeError, TypeError) as e:
            raise SemhilError(f"{path} is not a sweep plan ({e}); delete the folder or give another --out") from None

    def differences(self, other: SweepPlan) -> list[str]:
        mine, theirs = asdict(self), asdict(other)
        return [f"{key}: {theirs[key]!r} before, {mine[key]!r} now" for key in mine if mine[key] != theirs[key]]


def run_key(bundle, board_name: str, backend: str) -> str:
    return f"{bundle.path.name}-{bundle.hash}-{board_name}-{backend}"


def start(plan: SweepPlan, out: Path, resume: bool) -> None:
    """Write the plan, or check it is the one of the sweep being resumed."""
    plan_path = out / "sweep.json"
    if plan_path.exists():
        if not resume:
            raise SemhilError(f"{out} holds a sweep already: continue it with --resume, or give another --out")
        changed = plan.differences(SweepPlan.from_json(plan_path))
        if changed:
            raise SemhilError(f"--resume: the sweep in {out} was started with other settings ({'; '.join(changed)}); "
                              "give the same arguments, or another --out for a new sweep")
    elif resume:
        raise SemhilError(f"--resume: {out} holds no sweep (no sweep.json); drop --resume to start one")
    else:
        out.mkdir(parents=True, exist_ok=True)
        plan_path.write_text(json.dumps(asdict(plan), indent=2))


def run_sweep(plan: SweepPlan, bundles: list, out: Path, resume: bool, progress: Progress, map_path: Path | None = None,
              places: dict | None = None) -> list[dict]:
    """Every bundle on every board; returns the runs' results (those done before a resume included).
    places: board name -> places.PlaceChoice, for the boards that run in a labgrid place."""
    from radio.pilots import parse_pilots
    start(plan, out, resume)
    boards = [load_board(name) for name in plan.boards]
    places = places or {}
    # fails now, before any run, on a silicon board without a probe
    reach = {b.name: (None, None, places[b.name]) if b.name in places else how_to_reach(b, map_path) for b in boards}
    channels = tuple(parse_channel(spec) for spec in plan.channels)
    pilots = None if plan.pilots is None else parse_pilots(plan.pilots)
    rows_path = out / "results.jsonl"
    scored = {(row["run"], row["seed"]) for row in read_whole_lines(rows_path)}
    job = progress.add_task("runs (bundle x board)", total=len(bundles) * len(boards))
    results = []
    with rows_path.open("a") as rows_log:
        for bundle in bundles:
            for board in boards:
                key = run_key(bundle, board.name, plan.backend)
                json_path = out / f"{key}.json"
                if json_path.exists():
                    result = json.loads(json_path.read_text())
                else:
                    options = RunOptions(n_images=plan.images, backend=plan.backend, seed=plan.seed, channels=channels,
                                         pilots=pilots, probe=reach[board.name][0], port_url=reach[board.name][1], place=reach[board.name][2],
                                         resume=resume)
                    result = run_on_board(bundle, board, options, progress=progress, out_dir=out / "runs" / key)
                    for row in result["results"]:
                        if (key, row["seed"]) not in scored:
                            append_line(rows_log, {"run": key, "bundle": str(bundle.path), "bundle_hash": bundle.hash,
                                                   "board": board.name, "backend": plan.backend,
                                                   "bytes_per_image": result["bytes_per_image"], **row})
                    write_atomically(json_path, json.dumps(result, indent=2))
                results.append(result)
                progress.advance(job)
    return results


def sweep_table(results: list[dict], plan: SweepPlan) -> Table:
    """model x board -> accuracy through each channel, device latency, bytes per image."""
    table = Table(title=f"sweep: {len(results)} run(s), {plan.images} images each, {plan.backend} backend",
                  caption="accuracy through each channel; latency: device median after warm-up (after last byte: the part "
                          "of it after the image's last byte arrived)"
                  + (f"; the decoder was told the BER estimated from pilots ({plan.pilots})" if plan.pilots else ""))
    for name in ("model", "board", "B/image", "latency", "after last byte", *plan.channels):
        table.add_column(name, justify="left" if name in ("model", "board") else "right")
    for r in results:
        table.add_row(Path(r["bundle"]).name, r["board"], str(r["bytes_per_image"]), *latency_cells(r["device"], short_unit=False),
                      *(f"{row['accuracy'] * 100:.1f} %" for row in r["results"]))
    return table

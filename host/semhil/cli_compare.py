"""`semhil compare`: SemanticNN and the baselines trained on one dataset and run on one board."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from .cli import backend_option, ber_option, cli, console, map_option, parse_bers, progress_bar
from .air_budget.pipelines import DEFAULT_PIPELINES
from .air_budget.scoring import DEFAULT_PACKET_LOSSES
from .errors import SemhilError
from .paths import RUNS_DIR


@cli.command()
@click.option("--dataset", default="mnist5k", show_default=True, help="mnist5k | digits | mnist:<dir> | cifar10:<dir> | ...")
@click.option("--image-size", type=int, help="resize images to N x N")
@click.option("--preset", type=click.Choice(["demo", "tiny"]), default="demo", show_default=True,
              help="training budget of every codec (tiny: seconds, for a check of the set-up)")
@click.option("--codecs", default="all", show_default=True, help="comma-separated, among: semanticnn, semanticnn-matched, agilenn, "
              "deepcod, aecnn, adjscc, raw-feature, raw-image")
@click.option("--board", default="qemu-stm32f405", show_default=True, help="the board every codec runs on")
@backend_option
@ber_option
@click.option("--images", default=1000, show_default=True, help="test images per codec")
@map_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="results folder (default: runs/compare-<dataset>)")
@click.option("--resume", is_flag=True, help="continue a comparison in --out where it stopped (same arguments)")
@click.option("--air-bytes", help="compare pipelines at these air bytes per image (comma-separated), instead of codecs: "
              "code + FEC + packet overhead sized to each")
@click.option("--radio", default="ble", show_default=True, help="with --air-bytes: ble | 802.15.4 | lora | payload=N,rate=R[,sync=..]")
@click.option("--pipeline", "pipelines", multiple=True, help="with --air-bytes, repeatable: CODEC[+rs:P[,interleave=D]][+arq:N] "
              f"(default: {' '.join(DEFAULT_PIPELINES)})")
@click.option("--loss", default=",".join(f"{p:g}" for p in DEFAULT_PACKET_LOSSES), show_default=True,
              help="with --air-bytes: packet loss rates (comma-separated) scored with the CRC on")
def compare(dataset, image_size, preset, codecs, board, backend, ber, images, map_path, out, resume, air_bytes, radio, pipelines, loss) -> None:
    """Train SemanticNN and every baseline on DATASET's task CNN, run each device half on the board, and
    score it through the same bit channel: a table, OUT/compare.json, and a report with the plots.

    With --air-bytes: SemanticNN against classical digital pipelines (a code, Reed-Solomon, ARQ) each sized
    to the same air bytes, scored through the radio's packets over BER (CRC off) and packet loss (CRC on)."""
    if air_bytes:
        compare_air_bytes(dataset, image_size, preset, board, backend, ber, images, map_path, out, resume, air_bytes, radio, pipelines, loss)
        return
    from codec_train.compare import COMPARED, compare_configs
    from codec_train.data import load_dataset
    from codec_train.train import PRESETS, cached_bundle
    from .compare import comparison_rows, comparison_table
    from .report_page import write_report
    from .sweep import SweepPlan, run_sweep
    names = COMPARED if codecs == "all" else tuple(n.strip() for n in codecs.split(",") if n.strip())
    bers = parse_bers(ber)
    data = load_dataset(dataset, image_size)
    base = dataclasses.replace(PRESETS[preset], dataset=dataset, image_size=image_size)
    configs = compare_configs(base, names, data.image_shape, data.n_classes)
    out = out or RUNS_DIR / f"compare-{data.name.replace(':', '_').replace('/', '_')}"
    with progress_bar() as progress:
        job = progress.add_task("train codecs", total=len(configs))
        bundles = []
        for name, config in configs.items():
            bundles.append(cached_bundle(config, RUNS_DIR, f"{preset}-{name}", progress))
            progress.advance(job)
        plan = SweepPlan(tuple(str(b.path) for b in bundles), tuple(b.hash for b in bundles), (board,), backend,
                         tuple(f"iid:{b:g}" for b in bers), images, 0)
        results = run_sweep(plan, bundles, out, resume, progress, map_path)
    rows = comparison_rows(list(configs), bundles, results)
    (out / "compare.json").write_text(json.dumps({"dataset": data.name, "preset": preset, "codecs": rows}, indent=2))
    md_path, html_path = write_report(results, out / "report", f"codecs compared on {data.name}")
    console.print(comparison_table(rows))
    console.print(f"{out / 'compare.json'}; report: {md_path} and {html_path}")


def compare_air_bytes(dataset, image_size, preset, board, backend, ber, images, map_path, out, resume, air_bytes, radio, pipelines, loss) -> None:
    from radio.link import parse_link
    from .air_budget.flow import AirBudgetPlan, compare_at_air_bytes
    from .air_budget.pipelines import parse_pipeline
    from .air_budget.table import budget_table, not_bit_exact, write_air_budget_report
    budgets = tuple(whole_numbers("--air-bytes", air_bytes))
    losses = parse_bers(loss, "--loss", highest=1.0)
    plan = AirBudgetPlan(dataset, image_size, preset, tuple(parse_pipeline(p) for p in pipelines or DEFAULT_PIPELINES), budgets,
                         parse_link(radio), board, backend, images, parse_bers(ber), losses)
    out = out or RUNS_DIR / f"compare-air-{dataset.replace(':', '_').replace('/', '_')}"
    with progress_bar() as progress:
        rows = compare_at_air_bytes(plan, out, resume, progress, map_path)
    (out / "compare.json").write_text(json.dumps({"dataset": dataset, "preset": preset, "radio": plan.link.describe(),
                                                  "pipelines": rows}, indent=2))
    md_path, html_path = write_air_budget_report(rows, out / "report", f"pipelines at equal air bytes on {dataset}")
    for budget in budgets:
        console.print(budget_table([r for r in rows if r["budget_air_bytes"] == budget], budget, plan.link.radio.name, board))
    for line in not_bit_exact(rows):
        console.print(f"[bold yellow]warning:[/] {line}", highlight=False)
    console.print(f"{out / 'compare.json'}; report: {md_path} and {html_path}")


def whole_numbers(option: str, text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SemhilError(f"{option} {text!r}: give comma-separated whole numbers of bytes, e.g. 157,78") from None
    if not values or min(values) < 1:
        raise SemhilError(f"{option} {text!r}: give comma-separated whole numbers of bytes, each at least 1, e.g. 157,78")
    return values

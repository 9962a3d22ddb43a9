"""`semhil sweep`: BERs and channels x bundles x boards, resumable."""
from __future__ import annotations

from pathlib import Path

import click

from .errors import SemhilError

from .cli import (backend_option, ber_option, channel_option, channels_and_pilots, cli, console, coordinator_option, map_option,
                  parse_bers, pilots_option, progress_bar)


@cli.command()
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--board", "boards", default="native,qemu-stm32f405", show_default=True,
              help="comma-separated boards (with --place and no --board: the places' boards)")
@backend_option
@ber_option
@channel_option
@pilots_option
@click.option("--images", default=1000, show_default=True, help="test images per run")
@click.option("--seed", default=0, show_default=True, help="channel seed of the first channel (the next get seed + 1, ...)")
@map_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="folder for the sweep's results")
@click.option("--resume", is_flag=True, help="continue the sweep in --out where it stopped (same arguments)")
@click.option("--place", "place_names", multiple=True, metavar="NAME",
              help="a labgrid place (repeatable): its board (tag board=NAME) runs there, the place held for each run")
@coordinator_option
@click.pass_context
def sweep(ctx, bundles: tuple[Path, ...], boards: str, backend: str, ber: str, channel_specs: tuple[str, ...], pilots_spec: str | None,
          images: int, seed: int, map_path: Path | None, out: Path, resume: bool, place_names: tuple[str, ...],
          coordinator: str | None) -> None:
    """Run every BUNDLE on every board and score it through every channel; results are written as
    they come (OUT/results.jsonl, one results JSON per run), and `semhil report OUT` plots them."""
    from codec_train.bundle import load_bundle
    from .places.board import PlaceChoice, board_for_place
    from .sweep import SweepPlan, run_sweep, sweep_table
    places = {}
    for name in place_names:
        choice = PlaceChoice(name, coordinator)
        board = board_for_place(choice, None)
        if board in places:
            raise SemhilError(f"--place {places[board].name} and --place {name} both hold a {board}: a sweep runs each board once, give one")
        places[board] = choice
    if places and ctx.get_parameter_source("boards") is click.core.ParameterSource.DEFAULT:
        boards = ",".join(places)
    loaded = [load_bundle(path) for path in bundles]
    specs = tuple(f"iid:{b:g}" for b in parse_bers(ber)) + tuple(channel_specs)
    channels_and_pilots(ber, channel_specs, pilots_spec)  # a typo fails before any board starts
    plan = SweepPlan(tuple(str(b.path) for b in loaded), tuple(b.hash for b in loaded),
                     tuple(n.strip() for n in boards.split(",") if n.strip()), backend, specs, images, seed, pilots_spec)
    with progress_bar() as progress:
        results = run_sweep(plan, loaded, out, resume, progress, map_path, places)
    console.print(sweep_table(results, plan))
    console.print(f"results in {out} (results.jsonl, one JSON per run); plots: semhil report {out}")

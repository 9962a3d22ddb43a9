"""The `semhil` command line."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from radio.channel import DEFAULT_BERS
from radio.errors import RadioError

from .backends import BACKENDS
from .errors import SemhilError
from .paths import RUNS_DIR

console = Console()


def progress_bar(disable: bool = False) -> Progress:
    return Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=disable)


def parse_bers(text: str, option: str = "--ber", highest: float = 0.5) -> tuple[float, ...]:
    """Comma-separated rates (bit error rates; with highest=1, packet loss rates)."""
    try:
        bers = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SemhilError(f"{option} {text!r}: give comma-separated numbers, e.g. 0,0.001,0.01,0.05") from None
    if any(not 0 <= b <= highest for b in bers):
        raise SemhilError(f"{option} {text!r}: each rate must be within 0..{highest:g}")
    return bers


@click.group()
def cli() -> None:
    """semhil: train a semantic codec, run its device half on a board, score it under bit errors."""


def channels_and_pilots(ber: str, channel_specs: tuple[str, ...] = (), pilots_spec: str | None = None) -> tuple[tuple, object]:
    """The channel models of --ber (i.i.d. at each) and --channel, and the Pilots of --pilots (or None)."""
    from radio.channel import IidChannel, parse_channel
    from radio.pilots import parse_pilots
    channels = tuple(IidChannel(b) for b in parse_bers(ber)) + tuple(parse_channel(spec) for spec in channel_specs)
    return channels, None if pilots_spec is None else parse_pilots(pilots_spec)


def _run(bundle_path: Path, board_name: str | None, backend: str, images: int, ber: str, json_path: Path | None,
         probe_serial: str | None = None, map_path: Path | None = None, port_url: str | None = None,
         channel_specs: tuple[str, ...] = (), pilots_spec: str | None = None, place=None) -> dict:
    """board_name None: the default board, or the board the place's tag names."""
    from codec_train.bundle import load_bundle
    from .boards import load_board
    from .discovery import choose_probe, how_to_reach
    from .places.board import board_for_place
    from .report import print_run
    from .session import RunOptions, run_on_board
    if sum(map(bool, (port_url, probe_serial or map_path, place))) > 1:
        raise SemhilError("give one way to reach the board: --port, --probe/--hardware-map, or --place")
    if place:
        board_name = board_for_place(place, board_name)
    board = load_board(board_name or DEFAULT_BOARD)
    channels, pilots = channels_and_pilots(ber, channel_specs, pilots_spec)
    if map_path:
        probe, port_url, place = how_to_reach(board, map_path)
    else:
        probe = None if port_url or place else choose_probe(board, probe_serial, None, None)
    options = RunOptions(n_images=images, channels=channels, pilots=pilots, backend=backend, port_url=port_url,
                         probe=probe, place=place)
    bundle = load_bundle(bundle_path)
    with progress_bar() as progress:
        result = run_on_board(bundle, board, options, json_path, progress)
    print_run(result, board, console)
    console.print(f"results: {result['run_dir']}/results.json (a folder of this run's own; the latest run of "
                  f"{board.name} with {backend}: {Path(result['run_dir']).parent / 'latest'}/)")
    return result


DEFAULT_BOARD = "qemu-stm32f405"
board_option = click.option("--board", default=DEFAULT_BOARD, show_default=True, help="board name (boards/<name>.toml) or board file")
backend_option = click.option("--backend", type=click.Choice(list(BACKENDS)), default="standalone", show_default=True,
                              help="standalone: semhil's kernels; nnom: NNoM from NNOM_HOME; cmsis-nn: the standalone row "
                                   "pipeline with CMSIS-NN's convs from CMSIS_HOME, a peer for measurements")
images_option = click.option("--images", default=1000, show_default=True, help="test images sent to the board (the test split has 1,000)")
DEFAULT_BER_TEXT = ",".join(f"{ber:g}" for ber in DEFAULT_BERS)
ber_option = click.option("--ber", default=DEFAULT_BER_TEXT, show_default=True, help="bit error rates, comma-separated")
probe_option = click.option("--probe", "probe_serial", help="silicon boards: serial number of the board's ST-LINK "
                                                            "(`semhil boards --detect`)")
map_option = click.option("--hardware-map", "map_path", type=click.Path(dir_okay=False, path_type=Path),
                          help="silicon boards: find the board's probe in this hardware map")
channel_option = click.option("--channel", "channel_specs", multiple=True, metavar="SPEC",
                               help="a channel model besides i.i.d. at each --ber (repeatable): ge:BER,BURST, dynamic:LO,HI, trace:FILE, bpsk-snr:DB")
pilots_option = click.option("--pilots", "pilots_spec", metavar="SPEC", help="tell the decoder the BER estimated from pilot bits "
                                                                            "in each frame instead of the channel's: N[,window=FRAMES]")
place_option = click.option("--place", help="a labgrid place holding the board: acquired for the run (refused while someone "
                                           "else holds it), released after; its tag board=NAME says which board it is")
coordinator_option = click.option("--coordinator", metavar="HOST:PORT", help="the labgrid coordinator of --place "
                                                                             "(default: LG_COORDINATOR, else 127.0.0.1:20408)")
json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="write the results JSON here")


@cli.command()
@board_option
@backend_option
@images_option
@ber_option
@json_option
@probe_option
@map_option
def demo(board: str, backend: str, images: int, ber: str, json_path: Path | None, probe_serial: str | None,
         map_path: Path | None) -> None:
    """Train (or reuse) the default codec on mnist5k, build its firmware, run it on a board, score it."""
    from codec_train.train import PRESETS, cached_bundle
    from .boards import load_board
    from .discovery import choose_probe
    choose_probe(load_board(board), probe_serial, map_path, None)  # fail on a misspelt board or a missing probe before training
    with progress_bar() as progress:
        bundle = cached_bundle(PRESETS["demo"], RUNS_DIR, "demo", progress)
    console.print(f"bundle {bundle.path} (hash {bundle.hash})")
    _run(bundle.path, board, backend, images, ber, json_path, probe_serial, map_path)


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@board_option
@backend_option
@images_option
@ber_option
@channel_option
@pilots_option
@json_option
@probe_option
@map_option
@click.option("--port", "port_url", help="a board already running its firmware at this serial port or URL "
                                         "(e.g. rfc2217://rig2:2217 from `semhil serve`): not started, flashed or reset")
@place_option
@coordinator_option
@click.pass_context
def run(ctx, bundle: Path, board: str, backend: str, images: int, ber: str, channel_specs: tuple[str, ...], pilots_spec: str | None,
        json_path: Path | None, probe_serial: str | None, map_path: Path | None, port_url: str | None, place: str | None,
        coordinator: str | None) -> None:
    """Run BUNDLE on a board and score it; prints a table and writes the results JSON into a folder of
    the run's own, BUNDLE/results/<board>-<backend>/<run id>/ (and to --json). A silicon board is
    flashed through its ST-LINK first. With --place, the board of that labgrid place (its tag board=NAME
    names it), held for the run and released after."""
    from .places.board import PlaceChoice
    explicit = ctx.get_parameter_source("board") is not click.core.ParameterSource.DEFAULT
    _run(bundle, board if explicit or not place else None, backend, images, ber, json_path, probe_serial, map_path, port_url,
         channel_specs, pilots_spec, PlaceChoice(place, coordinator) if place else None)


@cli.command()
@click.argument("port")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (0.0.0.0: every interface)")
@click.option("--tcp-port", default=2217, show_default=True, help="TCP port to listen on")
def serve(port: str, host: str, tcp_port: int) -> None:
    """Serve a board's serial PORT over the network (RFC 2217) until Ctrl-C; elsewhere:
    semhil run BUNDLE --board B --port rfc2217://THIS-HOST:TCP-PORT."""
    import time
    from .remote import PortServer
    with PortServer(port, host, tcp_port) as server:
        console.print(f"serving {port} at {server.url} (Ctrl-C stops)")
        while True:
            time.sleep(1)


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@board_option
@backend_option
def build(bundle: Path, board: str, backend: str) -> None:
    """Generate the C model of BUNDLE and build its firmware for a board; prints its memory."""
    from codec_train.bundle import load_bundle
    from .boards import load_board
    from .build import build_firmware
    from .clocks import clock_plan
    b = load_board(board)
    console.print(firmware_table(build_firmware(load_bundle(bundle), b, backend), clock_plan(b)))


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def _of(used: int, capacity: int | None) -> str:
    return _kb(used) + (f" of {_kb(capacity)} ({100 * used / capacity:.0f} %)" if capacity else "")


def firmware_table(firmware, plan):
    """What `semhil build` prints: flash, static RAM, the worst-case stack and peak RAM (static + stack)
    against the board's flash and RAM, the stack region linked, the clock, and the build's notes."""
    from rich.table import Table
    board, m = firmware.board, firmware.memory
    table = Table(title=f"{firmware.path}", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    table.add_row("flash (text + rodata + data)", _of(m.flash_bytes, board.flash_bytes))
    table.add_row("static RAM (data + bss)", _kb(m.ram_static_bytes))
    if board.is_mcu:
        estimate = m.stack_estimate_bytes
        table.add_row("stack, worst case (GCC call graph)", "unbounded" if estimate is None else f"{_kb(estimate)} ({estimate:,} B)")
        if m.peak_ram_bytes is not None:
            table.add_row("peak RAM (static + stack)", _of(m.peak_ram_bytes, board.ram_bytes))
        else:
            table.add_row("RAM (static + stack region)", _of(m.ram_static_bytes + m.stack_region_bytes, board.ram_bytes))
        region = "the board file's stack_bytes" if m.stack_region_bytes == board.stack_bytes else "see the note"
        table.add_row("stack region linked", f"{_kb(m.stack_region_bytes)} ({region})")
        if m.stack_path:
            chain = " > ".join(m.stack_path).replace(" > + ", " + ")
            table.caption = f"deepest stack: {chain}"
        table.add_row("clock", plan.describe())
    for note in m.notes:
        table.add_row("[yellow]note[/]", note)
    return table


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def table(results: tuple[Path, ...]) -> None:
    """One table of several runs' results JSONs (semhil run --json, or a folder of them such as
    <bundle>/results or a sweep's), newest first: when, images, flash, RAM, stack, device latency,
    bytes per image, accuracy at BER 0 and 1 %. Files that cannot be read are named and skipped."""
    from .report import print_warnings, summary_table
    from .store import find_runs
    found = find_runs(results)
    console.print(summary_table(found.runs))
    print_warnings(found.warnings, console)


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@backend_option
@json_option
def export(bundle: Path, backend: str, json_path: Path | None) -> None:
    """Generate the C of BUNDLE's device half under BUNDLE/device/<backend>/; print its layers and what
    the int8 arithmetic costs against the float device half (symbol agreement, accuracy at BER 0)."""
    import json
    from codec_train.bundle import load_bundle
    from codec_train.data import load_dataset
    from .build import generate_sources
    from .model_report import layer_rows, layer_table, quantization_report
    b = load_bundle(bundle)
    out_dir = generate_sources(b.graph, b.hash, backend, b.path / "device" / backend, b.path / "build" / "nnom-sizer")
    rows = layer_rows(b.graph)
    data = load_dataset(b.config["dataset"], b.config.get("image_size"))
    quant = quantization_report(b, data.x_test, data.y_test)
    console.print(f"{backend} C sources in {out_dir}")
    console.print(layer_table(rows, f"device half of bundle {b.hash}"))
    console.print(f"int8 against float device half on {quant['n_images']} test images: symbols agree "
                  f"{quant['symbol_agreement'] * 100:.2f} %, accuracy at BER 0 {quant['int8_accuracy'] * 100:.1f} % "
                  f"(float {quant['float_accuracy'] * 100:.1f} %); activation memory: whole tensors need at least "
                  f"{quant['activation_lower_bound_bytes']:,} B, the standalone backend's row buffers take "
                  f"{sum(row['streamed_bytes'] for row in rows):,} B")
    if json_path:
        json_path.write_text(json.dumps({"bundle_hash": b.hash, "backend": backend, "sources": str(out_dir), "layers": rows,
                                         "quantization": quant}, indent=2))


@cli.group()
def bench() -> None:
    """Benchmarks that print figures (medians, ratios measured in the same run)."""


@bench.command("kernels")
@click.option("--bundle", "bundle_path", type=click.Path(path_type=Path),
              help="measure this bundle (under BUNDLE/bench/kernels/) instead of the default models")
@click.option("--board", "boards", multiple=True, help="board to measure on, repeatable (default: qemu-stm32f405 and qemu-cortex-m7)")
@click.option("--model", "models", multiple=True, type=click.Choice(["demo", "resnet50-128"]),
              help="model to measure, repeatable (default: the demo codec and the ResNet-50 codec at 128x128 RGB, untrained)")
@click.option("--images", type=int, help="images per board, model and backend (default: 10 for the demo, 3 for the ResNet-50)")
@json_option
def bench_kernels(bundle_path: Path | None, boards: tuple[str, ...], models: tuple[str, ...], images: int | None,
                  json_path: Path | None) -> None:
    """Device instructions (or cycles) per MAC of the device half, whole and per conv layer, of each available
    backend (standalone; NNoM local with NNOM_HOME; CMSIS-NN with CMSIS_HOME), per board and model, in one run."""
    from .kernel_bench import run_kernel_bench
    if images is not None and images < 1:
        raise SemhilError("--images must be 1 or more")
    run_kernel_bench(bundle_path, list(boards), list(models), images, json_path, console, progress_bar)


@cli.command()
@click.option("--place", "place_names", multiple=True, metavar="NAME", help="a labgrid place to check (repeatable)")
@coordinator_option
@map_option
def doctor(place_names: tuple[str, ...], coordinator: str | None, map_path: Path | None) -> None:
    """Check the toolchain, QEMU, NNoM, probes and serial-port permissions, and that the labgrid coordinator
    answers for each place configured (--place, a hardware map's labgrid_place); say what to install or change.
    Exits non-zero when something `make test` needs, or a configured place, is missing."""
    from rich.table import Table
    from .discovery import read_hardware_map
    from .doctor import run_checks
    from .places.board import PlaceChoice
    places = [PlaceChoice(name, coordinator) for name in place_names]
    places += [e.place_choice() for e in (read_hardware_map(map_path) if map_path else []) if e.labgrid_place]
    checks = run_checks(places)
    table = Table(title="semhil doctor")
    for name in ("check", "", "found", "to fix"):
        table.add_column(name)
    for c in checks:
        mark = "[green]ok[/]" if c.ok else ("[bold red]missing[/]" if c.required else "[yellow]optional[/]")
        table.add_row(c.what, mark, c.found, "" if c.ok else c.fix)
    console.print(table)
    failed = [c.what for c in checks if c.required and not c.ok]
    if failed:
        raise SemhilError(f"{len(failed)} required thing(s) are missing: {', '.join(failed)}")
    console.print("everything the native and QEMU boards need is here")


def main() -> None:
    from . import cli_codec  # noqa: F401 - registers train, eval, inspect
    from . import cli_boards  # noqa: F401 - registers boards and flash
    from . import cli_report  # noqa: F401 - registers report
    from . import cli_sweep  # noqa: F401 - registers sweep
    from . import cli_compare  # noqa: F401 - registers compare
    try:
        cli(standalone_mode=False)
    except (SemhilError, RadioError) as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)

"""`semhil boards` (board files, attached probes, hardware map) and `semhil flash`."""
from __future__ import annotations

import shlex
from pathlib import Path

import click
from rich import box
from rich.table import Table

from .boards import FLASH_TOOLS
from .cli import backend_option, cli, console, map_option, probe_option
from .errors import SemhilError


def _or_dash(value: int | None, scale: float) -> str:
    return "-" if not value else f"{value / scale:,.0f}"


def board_table() -> Table:
    from .boards import board_names, load_board
    headers = ("name", "family", "core", "clock\nMHz", "flash\nKB", "RAM\nKB", "run\nkind", "latency\nunit")  # fits 80 columns
    rows = [(b.name, b.family, b.core, _or_dash(b.clock_hz, 1e6), _or_dash(b.flash_bytes, 1024), _or_dash(b.ram_bytes, 1024),
             b.run_kind, b.latency_unit) for b in map(load_board, board_names())]
    table = Table(title="board files (boards/*.toml)", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for header in headers:
        table.add_column(header, justify="right" if header.endswith(("MHz", "KB")) else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def probe_table(probes) -> Table:
    table = Table(title="attached ST-LINK probes", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for column in ("port", "USB ID", "probe serial", "product", "boards"):
        table.add_column(column, no_wrap=column in ("port", "probe serial"))
    for p in probes:
        table.add_row(p.port, p.usb_id, p.serial_number or "?", p.product, ", ".join(p.boards) or "(no board file matches)")
    return table


@cli.command()
@click.option("--detect", is_flag=True, help="list the ST-LINK virtual COM ports attached now")
@click.option("--generate-hardware-map", "map_path", type=click.Path(dir_okay=False, path_type=Path),
              help="write the attached probes to this hardware map (TOML) for `semhil flash --hardware-map`")
def boards(detect: bool, map_path: Path | None) -> None:
    """List the board files; with --detect, the attached probes; with --generate-hardware-map, write them down."""
    from .discovery import ST_VID, STLINK_PIDS, detect_probes, hardware_map_entries, write_hardware_map
    if not (detect or map_path):
        console.print(board_table())
        return
    probes = detect_probes()
    if probes:
        console.print(probe_table(probes))
    else:
        console.print(f"no ST-LINK attached (looked for USB vendor {ST_VID:04x}, products "
                      f"{', '.join(f'{pid:04x}' for pid in sorted(STLINK_PIDS))} and those the board files name)")
    if map_path:
        entries = hardware_map_entries(probes)
        write_hardware_map(map_path, entries)
        unnamed = sum(1 for e in entries if not e.name)
        console.print(f"wrote {len(entries)} probe(s) to {map_path}"
                      + (f"; fill in the board name of {unnamed} of them (marked with a comment)" if unnamed else ""))


@cli.command("flash")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--board", "board_name", required=True, help="board name (boards/<name>.toml) or board file")
@backend_option
@click.option("--tool", type=click.Choice(FLASH_TOOLS), help="flasher (default: the board file's flash.tool)")
@probe_option
@map_option
@click.option("--dry-run", is_flag=True, help="build, then print the flashing command lines instead of running them")
def flash_bundle(bundle: Path, board_name: str, backend: str, tool: str | None, probe_serial: str | None,
                 map_path: Path | None, dry_run: bool) -> None:
    """Build the firmware of BUNDLE for a board and flash it through the board's ST-LINK; on a MicroPython
    board (pyboard-v11, openmv-h7: --probe names its USB serial number), build the native module and copy
    it and semhil's program onto the board with mpremote, then start the program."""
    from codec_train.bundle import load_bundle
    from .boards import load_board
    from .build import build_firmware
    from .discovery import choose_probe
    from .flash import choose_tool, flash
    board = load_board(board_name)
    if board.run_kind == "micropython":
        return _deploy_micropython(load_bundle(bundle), board, backend, probe_serial, dry_run)
    choose_tool(board, tool)  # a board that is not flashed fails before the build
    if probe_serial or map_path:
        probe = choose_probe(board, probe_serial, map_path, tool)
        probe_serial, tool = probe.serial, probe.tool
    firmware = build_firmware(load_bundle(bundle), board, backend)
    steps = flash(board, firmware.path, tool, probe_serial, dry_run)
    if dry_run:
        for step in steps:
            click.echo(shlex.join(step))
    else:
        console.print(f"flashed {firmware.path} onto {board.name}" + (f" (probe {probe_serial})" if probe_serial else ""))


def _deploy_micropython(bundle, board, backend: str, serial_number: str | None, dry_run: bool) -> None:
    from .build import build_firmware
    from .micropython.board import timer_of
    from .micropython.deploy import deploy
    from .micropython.natmod import PROGRAM
    if board.micropython_port is not None:
        raise SemhilError(f"board {board.name} runs MicroPython that semhil starts itself: `semhil run BUNDLE --board {board.name}` "
                          "builds the module, starts the board and copies it there")
    if not serial_number:
        raise SemhilError(f"board {board.name}: name it by the USB serial number of its MicroPython (--probe SERIAL; "
                          "`semhil boards --detect` or `mpremote connect list` shows it)")
    module = build_firmware(bundle, board, backend)
    steps = deploy(f"id:{serial_number}", module.path, PROGRAM, board.name, timer_of(board), dry_run)
    if dry_run:
        for step in steps:
            click.echo(shlex.join(step))
    else:
        console.print(f"copied {module.path} ({module.memory.flash_bytes:,} B) and {PROGRAM.name} onto {board.name} "
                      f"(USB serial {serial_number}) and started it")

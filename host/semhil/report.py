"""Human-readable tables of a run's results JSON."""
from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table


def _kb(n: int | None) -> str:
    return f"{n / 1024:.1f} KB"


def _of(used: int, capacity: int | None) -> str:
    return _kb(used) + (f" of {_kb(capacity)} ({100 * used / capacity:.0f} %)" if capacity else "")


def accuracy_table(result: dict) -> Table:
    table = Table(title=f"{result['board']} · {result['backend']} · bundle {result['bundle_hash']} · {result['n_images']} test images")
    for name in ("BER", "accuracy on the board", "float pipeline", "bytes/image"):
        table.add_column(name, justify="right")
    for row in result["results"]:
        label = f"{row['ber'] * 100:g} %" if row["channel"] == "iid" else f"{row['channel']} (mean {row['ber'] * 100:.3g} %)"
        table.add_row(label, f"{row['accuracy'] * 100:.1f} %", f"{row['float_accuracy'] * 100:.1f} %",
                      str(result["bytes_per_image"]))
    table.caption = f"uncompressed task CNN on the same images: {result['task_accuracy'] * 100:.1f} %"
    if "bit_exact_fraction" in result:
        table.caption += f"; codes equal to the simulator's: {result['bit_exact_fraction'] * 100:.1f} %"
    return table


def device_table(result: dict, board) -> Table:
    dev, lat = result["device"], result["device"]["latency"]
    table = Table(title="device half on the board", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    ram_capacity = board.ram_bytes - board.stack_bytes if board.ram_bytes and board.stack_bytes else board.ram_bytes
    table.add_row("flash (text + rodata + data)", _of(dev["flash_bytes"], board.flash_bytes))
    table.add_row("static RAM (data + bss)", _of(dev["ram_static_bytes"], ram_capacity))
    table.add_row("stack peak", _of(dev["stack_peak_bytes"], board.stack_bytes))
    table.add_row("activation arena (lower bound)", f"{_kb(dev['arena_bytes'])} ({_kb(dev['activation_lower_bound_bytes'])})")
    table.add_row("device latency, median (p95)", f"{lat['median']:,.0f} ({lat['p95']:,.0f}) {lat['unit']}")
    table.add_row(f"{lat['unit']} per MAC", f"{lat['median'] / dev['macs']:.2f} ({dev['macs']:,} MACs)")
    table.add_row("wire time per image", f"{result['wire_ms_per_image']:.1f} ms at {board.uart_baud} baud")
    return table


def print_run(result: dict, board, console: Console | None = None) -> None:
    from .model_report import layer_table
    layers = layer_table(result["layers"], f"layers of the device half · {result['backend']} backend · last image",
                         result["device"]["latency"]["unit"])
    (console or Console()).print(Group(accuracy_table(result), device_table(result, board), layers))

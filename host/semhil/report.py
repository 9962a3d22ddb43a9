"""Human-readable tables of a run's results JSON."""
from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table


UNIT_SHORT = {"instructions": "instr", "cycles": "cyc"}


def _kb(n: int | None) -> str:
    return f"{n / 1024:.1f} KB"


def _of(used: int, capacity: int | None) -> str:
    return _kb(used) + (f" of {_kb(capacity)} ({100 * used / capacity:.0f} %)" if capacity else "")


def accuracy_table(result: dict) -> Table:
    table = Table(title=f"{result['board']} · {result['backend']} · bundle {result['bundle_hash']} · {result['n_images']} test images")
    pilots = any(row.get("ber_source") == "pilots" for row in result["results"])
    for name in ("BER", "accuracy on the board", "float pipeline", "bytes/image", *(["BER from pilots, mean"] if pilots else [])):
        table.add_column(name, justify="right")
    for row in result["results"]:
        label = f"{row['ber'] * 100:g} %" if row["channel"] == "iid" else f"{row['channel']} (mean {row['ber'] * 100:.3g} %)"
        estimate = [f"{row['ber_estimate_mean'] * 100:.3g} %"] if pilots else []
        table.add_row(label, f"{row['accuracy'] * 100:.1f} %", f"{row['float_accuracy'] * 100:.1f} %",
                      str(result["bytes_per_image"]), *estimate)
    table.caption = f"uncompressed task CNN on the same images: {result['task_accuracy'] * 100:.1f} %"
    if pilots:
        row = result["results"][0]
        table.caption += (f"; the decoder is told the BER estimated from {row['pilot_bits']} pilot bits per frame "
                          f"(window {row['pilot_window']} frames), sent besides the code")
    if "bit_exact_fraction" in result:
        table.caption += f"; codes equal to the simulator's: {result['bit_exact_fraction'] * 100:.1f} %"
    return table


def device_table(result: dict, board) -> Table:
    dev, lat = result["device"], result["device"]["latency"]
    table = Table(title="device half on the board", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    table.add_row("flash (text + rodata + data)", _of(dev["flash_bytes"], board.flash_bytes))
    table.add_row("static RAM (data + bss)", _of(dev["ram_static_bytes"], board.ram_bytes))
    table.add_row("stack peak", _kb(dev["stack_peak_bytes"]))
    table.add_row("activation arena (lower bound)", f"{_kb(dev['arena_bytes'])} ({_kb(dev['activation_lower_bound_bytes'])})")
    table.add_row("device latency, median (p95)", f"{lat['median']:,.0f} ({lat['p95']:,.0f}) {lat['unit']}")
    after = dev.get("latency_after_last_byte")
    table.add_row("  of which after the image's last byte", f"{after['median']:,.0f} ({after['p95']:,.0f}) {lat['unit']}" if after else "-")
    if "peak_ram_bytes" in dev:
        table.add_row("peak RAM (static RAM + stack peak)", _of(dev["peak_ram_bytes"], board.ram_bytes))
    if dev["macs"]:
        table.add_row(f"{lat['unit']} per MAC", f"{lat['median'] / dev['macs']:.2f} ({dev['macs']:,} MACs)")
    table.add_row("wire time per image", f"{result['wire_ms_per_image']:.1f} ms at {board.uart_baud} baud")
    trip = result["round_trip_ms"]
    table.add_row("end to end per image, median (p95)", f"{trip['median']:.1f} ({trip['p95']:.1f}) ms")
    for warning in result.get("warnings", []):
        table.add_row("[bold yellow]warning[/]", warning)
    return table


def summary_table(results: list[dict]) -> Table:
    """One row per run (model x board), in the order given: when, how many images, memory, device latency,
    bytes per image, accuracy at BER 0 and 1 %."""
    from .report_page import RunNames, started_utc
    names = RunNames(results)
    table = Table(title=f"models x boards, {len(results)} run(s)",
                  caption="memory in KB; latency: median after warm-up; after last byte: the part of it after the image's last byte arrived")
    for name in ("started (UTC)", "model", "board", "backend", "images", "flash", "RAM", "stack", "latency", "after last byte",
                 "B/image", "BER 0", "BER 1 %"):
        table.add_column(name, justify="left" if name in ("started (UTC)", "model", "board", "backend") else "right")
    for r in results:
        dev = r["device"]
        accuracy = {row["ber"]: row["accuracy"] for row in r["results"] if row["channel"] == "iid"}
        table.add_row(started_utc(r), names.model(r), r["board"], r["backend"], f"{r['n_images']:,}",
                      *(f"{dev[k] / 1024:.1f}" for k in ("flash_bytes", "ram_static_bytes", "stack_peak_bytes")),
                      *latency_cells(dev), str(r["bytes_per_image"]),
                      *(f"{accuracy[b] * 100:.1f} %" if b in accuracy else "-" for b in (0.0, 0.01)))
    return table


def latency_cells(device: dict, short_unit: bool = True) -> tuple[str, str]:
    """The median device latency and the median after the image's last byte ("-" in results from
    before the board reported it), with their unit."""
    lat = device["latency"]
    unit = UNIT_SHORT.get(lat["unit"], lat["unit"]) if short_unit else lat["unit"]
    after = device.get("latency_after_last_byte")
    return f"{lat['median']:,.0f} {unit}", f"{after['median']:,.0f} {unit}" if after else "-"


def print_warnings(warnings, console: Console) -> None:
    for warning in warnings:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


def print_run(result: dict, board, console: Console | None = None) -> None:
    from .model_report import layer_table
    layers = layer_table(result["layers"], f"layers of the device half · {result['backend']} backend · last image",
                         result["device"]["latency"]["unit"])
    (console or Console()).print(Group(accuracy_table(result), device_table(result, board), layers))

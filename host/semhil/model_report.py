"""What a device half costs, layer by layer, and what its int8 arithmetic costs in accuracy."""
from __future__ import annotations

import numpy as np
from rich.table import Table

from codec_train.simulate import run_graph
from codec_train.train import float_symbols

from .backends.graph import activation_lower_bound, macs, output_bytes, output_shape, weight_bytes
from .backends import cmsis_nn
from .backends.standalone import plan


def layer_rows(graph: dict, layer_ticks: dict[str, int] | None = None, ticks_to_unit: float = 1.0,
               backend: str = "standalone") -> list[dict]:
    """One row per graph layer: output shape, MACs, weight bytes, the whole output tensor's bytes (what
    a whole-tensor backend such as NNoM holds), the bytes of the buffers the row pipeline keeps for it
    (the cmsis-nn backend's own pipeline for it, else the standalone backend's), and the device time (in
    the latency unit) when the board's per-layer ticks are given. Layers a backend merges (NNoM's encoder
    tail) report their time under the first of them."""
    streamed = (cmsis_nn.plan(graph) if backend == "cmsis-nn" else plan(graph)).layer_bytes()
    rows = []
    for layer in graph["layers"]:
        row = {"layer": layer["name"], "op": layer["op"], "output_shape": output_shape(layer), "macs": macs(layer),
               "weight_bytes": weight_bytes(layer), "activation_bytes": output_bytes(layer),
               "streamed_bytes": streamed.get(layer["name"], 0)}
        if layer_ticks is not None:
            ticks = layer_ticks.get(layer["name"])
            row["device_time"] = None if ticks is None else ticks * ticks_to_unit
        rows.append(row)
    return rows


def layer_table(rows: list[dict], title: str, unit: str | None = None) -> Table:
    table = Table(title=title)
    for name in ("layer", "output", "MACs", "weights", "whole tensor", "streamed", *([f"device ({unit})"] if unit else [])):
        table.add_column(name, justify="left" if name == "layer" else "right")
    for row in rows:
        time = [] if unit is None else ["" if row.get("device_time") is None else f"{row['device_time']:,.0f}"]
        table.add_row(row["layer"], "x".join(map(str, row["output_shape"])), f"{row['macs']:,}", f"{row['weight_bytes']:,} B",
                      f"{row['activation_bytes']:,} B", "-" if row.get("streamed_bytes") is None else f"{row['streamed_bytes']:,} B", *time)
    return table


def quantization_report(bundle, images: np.ndarray, labels: np.ndarray) -> dict:
    """Symbol agreement of the int8 device half with the float one, and both accuracies at BER 0."""
    from radio.channel import IidChannel
    from .scoring import score
    task, codec = bundle.load_models()
    int8_symbols, payloads = run_graph(bundle.graph, images)
    agreement = float(np.mean(int8_symbols == float_symbols(task, codec, images)))
    (row,), _ = score(bundle, images, labels, payloads, [IidChannel(0.0)], 0)
    return {"n_images": len(images), "symbol_agreement": agreement, "int8_accuracy": row["accuracy"],
            "float_accuracy": row["float_accuracy"], "activation_lower_bound_bytes": activation_lower_bound(bundle.graph)}

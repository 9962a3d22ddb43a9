"""The comparison of codecs on one board: one row per codec, from its bundle and its run's results."""
from __future__ import annotations

from rich.table import Table

from .report import latency_cells
from .report_page import accuracy_by_ber, ber_label


def comparison_rows(names: list[str], bundles: list, results: list[dict]) -> list[dict]:
    """Per codec: what it sends, what its device half costs on the board, its accuracy per i.i.d. BER."""
    rows = []
    for name, bundle, r in zip(names, bundles, results, strict=True):
        rows.append({
            "codec": name, "bundle": str(bundle.path), "bundle_hash": bundle.hash, "crop_ratio": bundle.config.get("crop_ratio", 1.0),
            "bytes_per_image": r["bytes_per_image"], "side_bytes": bundle.graph.get("side_bytes", 0),
            "entropy_coded_bytes_per_image": bundle.metrics.get("entropy_coded_bytes_per_image"),
            "task_accuracy": r["task_accuracy"], "bit_exact_fraction": r["bit_exact_fraction"],
            "board": r["board"], "backend": r["backend"], "n_images": r["n_images"], "device": r["device"],
            "accuracy": {str(ber): acc for ber, acc in sorted(accuracy_by_ber(r, "iid").items())},
        })
    return rows


def comparison_table(rows: list[dict]) -> Table:
    bers = sorted({float(b) for row in rows for b in row["accuracy"]})
    first = rows[0]
    table = Table(title=f"codecs compared on {first['board']} ({first['backend']} backend), {first['n_images']} test images",
                  caption="B/image: bytes over the radio per image (Huffman: if entropy-coded); accuracy of the board's codes "
                          "through an i.i.d. bit channel; latency: device median (after last byte: the part of it after "
                          "the image's last byte arrived)")
    for name in ("codec", "B/image", "Huffman B", "flash KB", "RAM KB", "latency", "after last byte", *(f"BER {ber_label(b)}" for b in bers)):
        table.add_column(name, justify="left" if name == "codec" else "right")
    for row in rows:
        dev = row["device"]
        huffman = row["entropy_coded_bytes_per_image"]
        table.add_row(row["codec"], f"{row['bytes_per_image']:,}", "-" if huffman is None else f"{huffman:,.0f}",
                      f"{dev['flash_bytes'] / 1024:.1f}", f"{dev['ram_static_bytes'] / 1024:.1f}", *latency_cells(dev, short_unit=False),
                      *(f"{row['accuracy'][str(b)] * 100:.1f} %" if str(b) in row["accuracy"] else "-" for b in bers))
    return table

"""The comparison at equal air bytes as a person reads it (a table per budget, a report with the curves)
and as a machine does (the rows of compare.json)."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from rich.table import Table

from ..report_page import LINES, MARKERS, ber_label, save_figure, to_html, to_markdown

CAPTION = ("air B: bytes on the air per image, code + FEC + packet overhead, each packet sent once; @N B: the mean air "
           "bytes per image where ARQ's retransmissions added to them; BER columns: CRC off, bit errors reach the FEC and the "
           "decoder, but one in the sync word or header loses the packet; loss columns: CRC on, BER 0, lost packets are "
           "erasures; accuracy: top-1 on the board's codes")


def points(row: dict, axis: str) -> dict[float, dict]:
    key = "ber" if axis == "ber" else "packet_loss"
    return {r[key]: r for r in row["results"] if r["axis"] == axis}


def header_and_cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Accuracy in % at each point; "-" where a pipeline was not scored at it."""
    bers = sorted({b for row in rows for b in points(row, "ber")})
    losses = sorted({p for row in rows for p in points(row, "packet_loss")})
    header = ["pipeline", "crop", "code B", "FEC", "air B", *(f"BER {ber_label(b)}" for b in bers), *(f"loss {p * 100:g} %" for p in losses)]
    cells = []
    for row in rows:
        by_ber, by_loss = points(row, "ber"), points(row, "packet_loss")
        cells.append([row["pipeline"], f"{row['crop_ratio']:.2f}", f"{row['code_bytes']:,}", row["fec"]["fec"], f"{row['air_bytes']:,}",
                      *(cell(row, by_ber.get(b)) for b in bers), *(cell(row, by_loss.get(p)) for p in losses)])
    return header, cells


def cell(row: dict, point: dict | None) -> str:
    """Accuracy in %; with the mean air bytes after it where retransmissions took more than one transmission's."""
    if point is None:
        return "-"
    text = f"{point['accuracy'] * 100:.1f}"
    if point["air_bytes_mean"] >= row["air_bytes"] + 0.5:
        text += f" @{point['air_bytes_mean']:.0f}B"
    return text


def budget_table(rows: list[dict], budget: int, radio: str, board: str) -> Table:
    header, cells = header_and_cells(rows)
    table = Table(title=f"accuracy (%) of pipelines at {budget} air bytes per image on {radio}, codes from {board}", caption=CAPTION)
    for name in header:
        table.add_column(name, justify="left" if name == "pipeline" else "right", no_wrap=name == "pipeline")
    for line in cells:
        table.add_row(*line)
    return table


def not_bit_exact(rows: list[dict]) -> list[str]:
    """A line for each pipeline whose board codes differed from the simulator's (its accuracy is the board's)."""
    return [f"{row['pipeline']} at {row['budget_air_bytes']} B: {row['bit_exact_fraction'] * 100:.1f} % of its codes equal the "
            "simulator's" for row in rows if row["bit_exact_fraction"] < 1.0]


def plot_air_budget(rows: list[dict], path: Path) -> Path:
    budgets = sorted({row["budget_air_bytes"] for row in rows}, reverse=True)
    fig = Figure(figsize=(12, 4.5 * len(budgets)), layout="constrained")
    axes = fig.subplots(len(budgets), 2, squeeze=False)
    for (ax_ber, ax_loss), budget in zip(axes, budgets, strict=True):
        for i, row in enumerate(r for r in rows if r["budget_air_bytes"] == budget):
            style = {"color": f"C{i}", "linestyle": LINES[i % len(LINES)], "marker": MARKERS[i % len(MARKERS)], "alpha": 0.85,
                     "label": f"{row['pipeline']} · {row['air_bytes']} air B"}
            for ax, axis in ((ax_ber, "ber"), (ax_loss, "packet_loss")):
                pts = sorted(points(row, axis).items())
                ax.plot([x * 100 for x, _ in pts], [r["accuracy"] * 100 for _, r in pts], **style)
        ax_ber.set_xscale("symlog", linthresh=0.1)
        ax_ber.set(title=f"{budget} air bytes: accuracy against BER (CRC off)", xlabel="bit error rate (%)", ylabel="accuracy (%)")
        ax_loss.set(title=f"{budget} air bytes: accuracy against packet loss (CRC on)", xlabel="packets lost (%)", ylabel="accuracy (%)")
        for ax in (ax_ber, ax_loss):
            ax.grid(True, alpha=0.3)
        ax_loss.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return save_figure(fig, path)


def write_air_budget_report(rows: list[dict], out_dir: Path, title: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_air_budget(rows, out_dir / "air_budget.png")
    blocks: list[tuple] = [("h1", title), ("p", CAPTION + ".")]
    if warnings := not_bit_exact(rows):
        blocks += [("h2", "Warnings"), ("list", warnings)]
    for budget in sorted({row["budget_air_bytes"] for row in rows}, reverse=True):
        header, cells = header_and_cells([r for r in rows if r["budget_air_bytes"] == budget])
        blocks += [("h2", f"{budget} air bytes per image"), ("table", header, cells)]
    blocks += [("h2", "Curves"), ("plot", "plot-air-budget", plot, "accuracy against BER (CRC off) and against packet loss (CRC on)")]
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(to_markdown(blocks))
    html_path.write_text(to_html(blocks))
    return md_path, html_path

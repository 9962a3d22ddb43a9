"""`semhil report`: a Markdown and a self-contained HTML page, with plots, of several runs' results JSONs."""
from __future__ import annotations

import base64
import html
import time
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .errors import SemhilError
from .report import latency_cells
from .store.catalog import EXPECTED

PLOTS = {  # plot id -> (file, alt text)
    "plot-accuracy-ber": ("accuracy_ber.png", "accuracy against bit error rate, per channel"),
    "plot-bytes-accuracy": ("bytes_accuracy.png", "accuracy against bytes per image, at BER 0 and the highest common BER"),
    "plot-latency": ("latency.png", "device latency per board, median with p95 whisker"),
    "plot-memory": ("memory.png", "flash, static RAM and stack peak per model and board"),
}


def _model_key(r: dict) -> tuple[str, str]:
    return Path(r["bundle"]).name, r.get("bundle_hash", "")


def started_utc(r: dict) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["started"])) if "started" in r else "-"


class RunNames:
    """What the pages call each model and run: the bundle folder's name (with the hash where two bundles
    share a name); a run is model · board · backend, with its start time where that is not enough."""

    def __init__(self, results: list[dict]):
        hashes_of: dict[str, set[str]] = {}
        for name, bundle_hash in map(_model_key, results):
            hashes_of.setdefault(name, set()).add(bundle_hash)
        self.models = {(name, h): name if len(hashes) == 1 else f"{name} ({h[:8]})" for name, hashes in hashes_of.items() for h in hashes}
        triples = [self._triple(r) for r in results]
        self.repeated = {t for t in triples if triples.count(t) > 1}

    def _triple(self, r: dict) -> tuple[str, str, str]:
        return self.model(r), r["board"], r["backend"]

    def model(self, r: dict) -> str:
        return self.models[_model_key(r)]

    def run(self, r: dict) -> str:
        """model · board · backend, and where the decoder's BER came from pilots, how many."""
        pilots = next((row["pilot_bits"] for row in r["results"] if row.get("ber_source") == "pilots"), None)
        label = " · ".join(self._triple(r)) + (f" · BER from {pilots} pilots" if pilots else "")
        return label + (f" · {started_utc(r)}" if self._triple(r) in self.repeated else "")


def ber_label(ber: float) -> str:
    return f"{ber * 100:g} %"


def accuracy_by_ber(r: dict, channel: str) -> dict[float, float]:
    return {row["ber"]: row["accuracy"] for row in r["results"] if row["channel"] == channel}


def channels_of(results: list[dict]) -> list[str]:
    found = {row["channel"] for r in results for row in r["results"]}
    return sorted(found, key=lambda c: (c != "iid", c))


def bers_of(results: list[dict], channel: str) -> list[float]:
    return sorted({ber for r in results for ber in accuracy_by_ber(r, channel)})


LINES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v")


def save_figure(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def tick_label(r: dict, names: RunNames) -> str:
    return names.run(r).replace(" · ", "\n")


def plot_accuracy_ber(results: list[dict], names: RunNames, path: Path) -> Path:
    channels = channels_of(results) or ["iid"]  # an empty panel rather than none
    fig = Figure(figsize=(9, 5 * len(channels)), layout="constrained")
    for ax, channel in zip(fig.subplots(len(channels), 1, squeeze=False)[:, 0], channels, strict=True):
        for i, r in enumerate(results):  # colour Ci is run i in every plot; line styles tell apart runs that overlap
            points = sorted(accuracy_by_ber(r, channel).items())
            if points:
                ax.plot([b * 100 for b, _ in points], [a * 100 for _, a in points], color=f"C{i}", linestyle=LINES[i % len(LINES)],
                        marker=MARKERS[i % len(MARKERS)], alpha=0.85, label=f"{names.run(r)} · {r['bytes_per_image']:,} B/image")
        bers = [b * 100 for b in bers_of(results, channel)]
        ax.set_xscale("symlog", linthresh=min([b for b in bers if b > 0], default=0.1))  # linear near 0: BER 0 is on the axis
        ax.set_xticks(bers, [f"{b:g}" for b in bers])
        ax.set(title=f"accuracy against BER, channel {channel}", xlabel="bit error rate (%)", ylabel="accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return save_figure(fig, path)


def plot_bytes_accuracy(results: list[dict], names: RunNames, path: Path) -> Path:
    common = set.intersection(*(set(accuracy_by_ber(r, "iid")) for r in results))
    highest = max(common, default=0.0)
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax = fig.subplots()
    for ber, marker in ((0.0, "o"), (highest, "s")) if highest > 0 else ((0.0, "o"),):
        labels_at: dict[tuple[float, float], list[str]] = {}  # runs on the same point share one label
        for r in results:
            if ber in (accuracy := accuracy_by_ber(r, "iid")):
                labels_at.setdefault((r["bytes_per_image"], accuracy[ber] * 100), []).append(names.run(r))
        ax.scatter([x for x, _ in labels_at], [y for _, y in labels_at], marker=marker, s=70, label=f"BER {ber_label(ber)}")
        for point, labels in labels_at.items():
            ax.annotate("\n".join(labels), point, xytext=(6, 4), textcoords="offset points", fontsize="x-small")
    ax.set(title="accuracy against bytes per image (channel iid)", xlabel="bytes per image", ylabel="accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_latency(results: list[dict], names: RunNames, path: Path) -> Path:
    units = sorted({r["device"]["latency"]["unit"] for r in results})
    fig = Figure(figsize=(max(9, 2 * len(results)), 5 * len(units)), layout="constrained")
    for ax, unit in zip(fig.subplots(len(units), 1, squeeze=False)[:, 0], units, strict=True):
        indexes = [i for i, r in enumerate(results) if r["device"]["latency"]["unit"] == unit]
        latencies = [results[i]["device"]["latency"] for i in indexes]
        whiskers = [[0] * len(indexes), [lat["p95"] - lat["median"] for lat in latencies]]
        ax.bar(range(len(indexes)), [lat["median"] for lat in latencies], yerr=whiskers, capsize=6, color=[f"C{i}" for i in indexes])
        ax.set_xticks(range(len(indexes)), [tick_label(results[i], names) for i in indexes], fontsize="small")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set(title=f"device latency in {unit}: median, whisker to p95", ylabel=unit)
        ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


def plot_memory(results: list[dict], names: RunNames, path: Path) -> Path:
    kinds = {"flash_bytes": "flash", "ram_static_bytes": "static RAM", "stack_peak_bytes": "stack peak"}
    fig = Figure(figsize=(max(9, 2 * len(results)), 5), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(kinds)
    for k, (key, label) in enumerate(kinds.items()):
        ax.bar([i + (k - 1) * width for i in range(len(results))], [r["device"][key] / 1024 for r in results], width, label=label)
    ax.set_xticks(range(len(results)), [tick_label(r, names) for r in results], fontsize="small")
    ax.set(title="memory of the device half", ylabel="KB")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def summary_rows(results: list[dict], names: RunNames, bers: list[float]) -> list[list[str]]:
    rows = []
    for r in results:
        dev, accuracy = r["device"], accuracy_by_ber(r, "iid")
        rows.append([started_utc(r), names.model(r), r["board"], r["backend"], f"{r['n_images']:,}",
                     *(f"{dev[k] / 1024:.1f}" for k in ("flash_bytes", "ram_static_bytes", "stack_peak_bytes")),
                     *latency_cells(dev), str(r["bytes_per_image"]),
                     *(f"{accuracy[b] * 100:.1f} %" if b in accuracy else "-" for b in bers)])
    return rows


SUMMARY_HEADER = ["started (UTC)", "model", "board", "backend", "images", "flash KB", "RAM KB", "stack KB", "latency",
                  "after last byte", "B/image"]


def report_blocks(results: list[dict], title: str, plots: dict[str, Path], warnings=()) -> list[tuple]:
    """The page as blocks, rendered as Markdown or HTML: ("h1"|"h2"|"p", text), ("list", items),
    ("table", header, rows), ("plot", id, path, alt text)."""
    names = RunNames(results)
    iid_bers = bers_of(results, "iid")
    blocks: list[tuple] = [("h1", title), ("p", f"{len(results)} run(s), in the order given (a folder's: newest first). Memory in KB; "
                                                 "latency: device median after warm-up (after last byte: the part of it after the image's "
                                                 "last byte arrived); accuracy: top-1 on the board's codes through the channel.")]
    if warnings:
        blocks += [("h2", "Warnings"), ("list", list(warnings))]
    blocks.append(("table", [*SUMMARY_HEADER, *(f"BER {ber_label(b)}" for b in iid_bers)], summary_rows(results, names, iid_bers)))
    for channel in channels_of(results):
        bers = bers_of(results, channel)
        rows = [[names.run(r), *(f"{a[b] * 100:.1f} %" if b in (a := accuracy_by_ber(r, channel)) else "-" for b in bers)]
                for r in results]
        blocks += [("h2", f"Accuracy against BER, channel {channel}"), ("table", ["run", *map(ber_label, bers)], rows)]
    blocks.append(("h2", "Plots"))
    blocks += [("plot", plot_id, path, PLOTS[plot_id][1]) for plot_id, path in plots.items()]
    return blocks


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def to_markdown(blocks: list[tuple]) -> str:
    lines = []
    for kind, *rest in blocks:
        if kind == "table":
            header, rows = rest
            lines += [_md_row(header), "|" + "---|" * len(header), *map(_md_row, rows)]
        elif kind == "list":
            lines += [f"- {item}" for item in rest[0]]
        elif kind == "plot":
            lines.append(f"![{rest[2]}]({rest[1].name})")
        else:
            lines.append({"h1": "# ", "h2": "## ", "p": ""}[kind] + rest[0])
        lines.append("")
    return "\n".join(lines)


STYLE = """body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #eee; }
td:first-child, th:first-child { text-align: left; }
img.plot { max-width: 100%; display: block; margin: 1em 0; }"""


def to_html(blocks: list[tuple]) -> str:
    parts = []
    for kind, *rest in blocks:
        if kind == "table":
            header, rows = rest
            cells = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
            cells += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("<table>\n" + "\n".join(cells) + "\n</table>")
        elif kind == "list":
            parts.append("<ul>\n" + "\n".join(f"<li>{html.escape(item)}</li>" for item in rest[0]) + "\n</ul>")
        elif kind == "plot":
            data = base64.b64encode(rest[1].read_bytes()).decode("ascii")
            parts.append(f'<img class="plot" id="{rest[0]}" alt="{html.escape(rest[2])}" src="data:image/png;base64,{data}">')
        else:
            parts.append(f"<{kind}>{html.escape(rest[0])}</{kind}>")
    title = html.escape(blocks[0][1])
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{title}</title>\n<style>\n{STYLE}\n</style></head>\n'
            "<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")


def write_report(results: list[dict], out_dir, title: str = "semhil report", warnings=()) -> tuple[Path, Path]:
    """Write the plots (PNG), report.md and a self-contained report.html of results (in their order) into
    out_dir, with the warnings (files skipped, runs unfinished) near the top; return the two pages' paths."""
    if not results:
        raise SemhilError(f"no runs to report: {EXPECTED}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = RunNames(results)
    plotters = {"plot-accuracy-ber": plot_accuracy_ber, "plot-bytes-accuracy": plot_bytes_accuracy,
                "plot-latency": plot_latency, "plot-memory": plot_memory}
    plots = {plot_id: plot(results, names, out_dir / PLOTS[plot_id][0]) for plot_id, plot in plotters.items()}
    blocks = report_blocks(results, title, plots, warnings)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(to_markdown(blocks))
    html_path.write_text(to_html(blocks))
    return md_path, html_path

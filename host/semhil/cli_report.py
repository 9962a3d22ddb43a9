"""`semhil report`: plots and tables of several runs, as a Markdown and a self-contained HTML page."""
from __future__ import annotations

from pathlib import Path

import click

from .cli import cli, console


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("report"), show_default=True,
              help="directory for report.md, report.html and the plots")
@click.option("--title", default="semhil report", show_default=True, help="title of the report")
def report(results: tuple[Path, ...], out: Path, title: str) -> None:
    """A report of RESULTS (results JSONs of `semhil run --json`, or folders of them: <bundle>/results,
    a sweep's), newest first: accuracy against BER, bytes per image against accuracy, device latency and
    memory per board, with their tables; written as report.md (with PNGs beside it) and a self-contained
    report.html. Damaged results JSONs and unfinished runs are named in the report's warnings."""
    from .report import print_warnings, summary_table
    from .report_page import write_report
    from .store import find_runs
    found = find_runs(results)
    md_path, html_path = write_report(found.runs, out, title, found.warnings)
    console.print(summary_table(found.runs))
    print_warnings(found.warnings, console)
    console.print(f"report of {len(found.runs)} run(s): {md_path} (plots beside it) and {html_path} (self-contained, open it in a browser)")

"""`semhil report`: loading results JSONs, the Markdown and self-contained HTML pages, the command, and
the HTML rendered by a headless Chromium."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from semhil.errors import SemhilError
from semhil.report_page import PLOTS, write_report
from semhil.store import find_runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BERS = (0.0, 0.001, 0.01, 0.05)
MODELS = {"tiny": ("1a2b3c4d5e6f7a8b", 96, 0.97), "paper": ("9f8e7d6c5b4a3921", 768, 0.91)}
BOARDS = {"qemu-stm32f405": ("instructions", 1.0), "nucleo-f446re": ("cycles", 1.4)}


def make_run(model: str, board: str, backend: str = "standalone") -> dict:
    """A results JSON as `semhil run --json` writes it, with made-up figures that differ per model and board."""
    bundle_hash, code_bytes, clean_accuracy = MODELS[model]
    unit, slowness = BOARDS[board]
    scale = code_bytes / 96 * slowness
    rows = [{"ber": ber, "channel": "iid", "channel_params": {"name": "iid", "ber": ber}, "seed": k, "n": 1000,
             "accuracy": clean_accuracy - ber * (4 if model == "tiny" else 1.5), "float_accuracy": clean_accuracy - ber * 3,
             "ber_source": "configured", "pilot_bits": 0}  # keys the report does not know are ignored
            for k, ber in enumerate(BERS)]
    rows.append({"ber": 0.01, "channel": "gilbert-elliott", "seed": 9, "n": 1000, "accuracy": clean_accuracy - 0.08,
                 "float_accuracy": clean_accuracy - 0.07,
                 "channel_params": {"name": "gilbert-elliott", "p_good_to_bad": 0.01, "p_bad_to_good": 0.1, "mean_ber": 0.01}})
    device = {"flash_bytes": int(9000 * scale), "ram_static_bytes": int(17000 * scale), "stack_peak_bytes": int(400 * scale),
              "arena_bytes": int(14000 * scale), "activation_lower_bound_bytes": int(14000 * scale), "macs": int(216384 * scale),
              "latency": {"unit": unit, "median": 987488.0 * scale, "p95": 1030000.0 * scale}}
    if model == "tiny":  # the paper model's runs are from before boards reported the latency after the last byte
        device["latency_after_last_byte"] = {"unit": unit, "median": 123456.0 * scale, "p95": 130000.0 * scale}
    return {"board": board, "bundle": f"runs/{model}", "bundle_hash": bundle_hash, "backend": backend, "n_images": 1000,
            "bytes_per_image": code_bytes, "bit_exact_fraction": 1.0, "device": device,
            "wire_ms_per_image": 80.8, "round_trip_ms": {"median": 45.9, "p95": 54.4}, "warnings": [], "results": rows,
            "task_accuracy": 0.985}


def all_runs() -> list[dict]:
    return [make_run(model, board) for model in MODELS for board in BOARDS]


def write_runs(directory, runs) -> list:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for run in runs:
        path = directory / f"{run['bundle'].split('/')[-1]}-{run['board']}.json"
        path.write_text(json.dumps(run))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    md_path, html_path = write_report(all_runs(), out, "Split inference <lab> & bench")
    return out, md_path, html_path


def test_find_runs_takes_files_and_directories_and_skips_other_json(tmp_path):
    files = write_runs(tmp_path / "sweep", all_runs())
    (tmp_path / "sweep" / "sweep-plan.json").write_text(json.dumps({"bers": [0, 0.01]}))
    (tmp_path / "sweep" / "notes.txt").write_text("not read")
    found = find_runs([tmp_path / "sweep", files[0]])  # files[0] is also in the directory: counted once
    runs = found.runs
    assert len(runs) == 4 and found.warnings == []
    assert {(r["bundle"], r["board"]) for r in runs} == {(r["bundle"], r["board"]) for r in all_runs()}


@pytest.mark.parametrize("content,message", [
    ("this is not json {", "is not a results JSON (not JSON"),
    (json.dumps({"board": "native", "results": []}), "is not a results JSON of `semhil run`"),
    (json.dumps([1, 2, 3]), "is not a results JSON of `semhil run`"),
])
def test_find_runs_refuses_a_file_that_is_not_a_run(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(SemhilError) as e:
        find_runs([path])
    assert message in str(e.value) and str(path) in str(e.value)
    assert "give the files `semhil run --json` or `semhil sweep` write" in str(e.value)


@pytest.mark.parametrize("content,message", [
    ("this is not json {", "is not a results JSON (not JSON"),
    (json.dumps({"board": "native", "results": []}), "is not a results JSON of `semhil run` (it lacks bundle, device)"),
])
def test_a_damaged_file_beside_runs_is_named_and_skipped(tmp_path, content, message):
    write_runs(tmp_path, all_runs())
    (tmp_path / "broken.json").write_text(content)
    found = find_runs([tmp_path])
    assert len(found.runs) == 4
    assert len(found.warnings) == 1 and message in found.warnings[0] and str(tmp_path / "broken.json") in found.warnings[0]


def test_find_runs_refuses_a_directory_without_runs(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"something": "else"}))
    with pytest.raises(SemhilError, match=r"has no results JSON in it. give the files `semhil run --json`") as e:
        find_runs([tmp_path])
    assert str(tmp_path) in str(e.value)


def test_markdown_has_the_tables_and_existing_plots(report):
    out, md_path, _ = report
    text = md_path.read_text()
    assert text.startswith("# Split inference <lab> & bench\n")
    assert ("| started (UTC) | model | board | backend | images | flash KB | RAM KB | stack KB | latency | after last byte | "
            "B/image | BER 0 % | BER 0.1 % | BER 1 % | BER 5 % |") in text
    assert ("| - | tiny | qemu-stm32f405 | standalone | 1,000 | 8.8 | 16.6 | 0.4 | 987,488 instr | 123,456 instr | 96 | "
            "97.0 % | 96.6 % | 93.0 % | 77.0 % |") in text
    assert "| paper | nucleo-f446re | standalone |" in text and " cyc | - | 768 |" in text
    assert "## Accuracy against BER, channel iid" in text and "## Accuracy against BER, channel gilbert-elliott" in text
    assert "| tiny · qemu-stm32f405 · standalone | 89.0 % |" in text  # gilbert-elliott at mean BER 1 %
    images = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text)
    assert sorted(images) == sorted(file for file, _ in PLOTS.values())
    for name in images:
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE)


def test_html_is_self_contained_with_every_plot_inline(report):
    _, _, html_path = report
    page = html_path.read_text()
    assert "Split inference &lt;lab&gt; &amp; bench" in page and "<lab>" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    for plot_id in PLOTS:
        tag = re.search(rf'<img class="plot" id="{plot_id}" alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
        assert tag, f"no inline image for {plot_id}"
        png = base64.b64decode(tag.group(1), validate=True)
        assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    assert page.count("<table>") == 3  # summary, iid, gilbert-elliott


def test_two_bundles_with_one_name_are_told_apart_by_hash(tmp_path):
    other = make_run("tiny", "qemu-stm32f405")
    other["bundle_hash"] = "0000aaaa1111bbbb"
    md_path, _ = write_report([make_run("tiny", "qemu-stm32f405"), other], tmp_path, "two tinies")
    text = md_path.read_text()
    assert "| tiny (1a2b3c4d) |" in text and "| tiny (0000aaaa) |" in text


def test_runs_whose_decoder_had_the_ber_from_pilots_say_so(tmp_path):
    piloted = make_run("tiny", "nucleo-f446re")
    for row in piloted["results"]:
        row.update(ber_source="pilots", pilot_bits=64, pilot_window=1, ber_estimate_mean=row["ber"])
    md_path, _ = write_report([make_run("tiny", "qemu-stm32f405"), piloted], tmp_path, "pilots")
    text = md_path.read_text()
    assert "tiny · nucleo-f446re · standalone · BER from 64 pilots |" in text
    assert "tiny · qemu-stm32f405 · standalone |" in text


def test_report_command_writes_both_pages(tmp_path):
    import semhil.cli_report  # noqa: F401 - registers `semhil report`
    from semhil.cli import cli
    write_runs(tmp_path / "sweep", all_runs())
    out = tmp_path / "out"
    done = CliRunner().invoke(cli, ["report", str(tmp_path / "sweep"), "--out", str(out), "--title", "bench 3"])
    assert done.exit_code == 0, done.output
    assert str(out / "report.md") in done.output.replace("\n", "") and "report.html" in done.output
    assert "models x boards, 4 run(s)" in done.output
    assert (out / "report.md").read_text().startswith("# bench 3")
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", *(file for file, _ in PLOTS.values())}


def test_tables_show_the_latency_after_the_last_byte_and_a_dash_for_older_runs():
    """`semhil table` and the table `semhil run` prints: the after-last-byte latency beside the
    latency, "-" for a results JSON from before boards reported it."""
    from rich.console import Console
    from semhil.boards import load_board
    from semhil.report import device_table, summary_table
    new, old = make_run("tiny", "qemu-stm32f405"), make_run("paper", "nucleo-f446re")
    new["device"]["peak_ram_bytes"] = 17400
    console = Console(record=True, width=300)
    console.print(summary_table([new, old]))
    text = console.export_text()
    assert "after last byte" in text
    new_row = next(line for line in text.splitlines() if " tiny " in line)
    old_row = next(line for line in text.splitlines() if " paper " in line)
    assert re.search(r"987,488 instr\s+│\s+123,456 instr\s+│\s+96\s", new_row), new_row
    assert re.search(r"cyc\s+│\s+-\s+│\s+768\s", old_row), old_row
    for run, after, peak in ((new, "123,456 (130,000) instructions", "17.0 KB"), (old, "-", None)):
        run = {**run, "layers": [], "round_trip_ms": {"median": 1.0, "p95": 2.0}}
        console = Console(record=True, width=300)
        console.print(device_table(run, load_board("qemu-stm32f405")))
        lines = console.export_text().splitlines()
        assert any("of which after the image's last byte" in line and line.rstrip(" │").endswith(after) for line in lines), lines
        assert any("peak RAM" in line for line in lines) == (peak is not None)
        if peak:
            assert any("peak RAM" in line and peak in line for line in lines)


def test_report_command_refuses_a_wrong_file(tmp_path):
    import semhil.cli_report  # noqa: F401
    from semhil.cli import cli
    wrong = tmp_path / "wrong.json"
    wrong.write_text("{}")
    done = CliRunner().invoke(cli, ["report", str(wrong), "--out", str(tmp_path / "out")])
    assert isinstance(done.exception, SemhilError) and "is not a results JSON" in str(done.exception)
    assert not (tmp_path / "out").exists()


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("needs Debian's chromium (make test installs it: apt-get install chromium)")
    return path


def screenshot(html_path, shot_path) -> np.ndarray:
    """The page as headless Chromium renders it, as an RGB(A) array of floats in 0..1."""
    from matplotlib.image import imread
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,4000",
                           f"--screenshot={shot_path}", html_path.resolve().as_uri()], capture_output=True, text=True, timeout=60)
    assert shot_path.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return imread(shot_path)


def coloured_pixels(image: np.ndarray) -> int:
    """Pixels that are neither white, grey nor black: the plots' lines, markers and bars (the tables are black on white)."""
    rgb = image[..., :3]
    return int(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.25).sum())


def test_chromium_shows_the_plots(report, tmp_path):
    _, _, html_path = report
    image = screenshot(html_path, tmp_path / "shot.png")
    assert image.shape[0] >= 3000 and image.shape[1] >= 1200
    assert coloured_pixels(image) > 50_000


def test_doctor_names_a_missing_chromium_as_optional(monkeypatch, tmp_path):
    from semhil.doctor import check_browser
    monkeypatch.setenv("PATH", str(tmp_path))
    check = check_browser()
    assert not check.ok and not check.required and "chromium not found" in check.found and "apt-get install chromium" in check.fix

"""No run overwrites another: `semhil run` twice, then `semhil bench kernels`, on the native board and
a copy of the session's bundle; every run's files stay byte for byte, and `semhil report` lists them."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from codec_train.bundle import load_bundle

SEMHIL = [sys.executable, "-c", "from semhil.cli import main; main()"]


def semhil(*args, cwd=None) -> str:
    done = subprocess.run([*SEMHIL, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "250"}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def snapshot(folder) -> dict:
    """Every file below folder (links followed as links) -> its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def own_bundle(bundle, tmp_path_factory):
    path = tmp_path_factory.mktemp("kept") / bundle.path.name
    shutil.copytree(bundle.path, path, ignore=shutil.ignore_patterns("build", "results", "device", "bench"))
    return load_bundle(path)


def test_runs_and_benchmarks_keep_every_earlier_run(own_bundle, tmp_path):
    results = own_bundle.path / "results" / "native-standalone"
    semhil("run", own_bundle.path, "--board", "native", "--images", 12, "--ber", "0,0.01")
    (first,) = [p for p in results.iterdir() if p.name != "latest"]
    kept = snapshot(first)
    assert {str(p) for p in kept} == {"results.json", "images.jsonl"}
    assert (results / "latest").resolve() == first.resolve()

    semhil("run", own_bundle.path, "--board", "native", "--images", 10, "--ber", "0")
    second = (results / "latest").resolve()
    assert second != first.resolve() and snapshot(first) == kept
    assert json.loads((second / "results.json").read_text())["n_images"] == 10
    everything = snapshot(own_bundle.path / "results")

    out = semhil("bench", "kernels", "--bundle", own_bundle.path, "--board", "native", "--images", 6)
    assert snapshot(own_bundle.path / "results") == everything
    (bench,) = (own_bundle.path / "bench" / "kernels").glob("2*")
    assert str(bench / "kernels.json") in out.replace("\n", "")
    (cell,) = json.loads((bench / "kernels.json").read_text())["results"]
    assert cell["board"] == "native" and cell["backends"]["standalone"]["bit_exact_fraction"] == 1.0

    damaged = results / "19990101T000000Z-dead00"
    damaged.mkdir()
    (damaged / "results.json").write_text((first / "results.json").read_text()[:500])
    report = tmp_path / "report"
    out = semhil("report", own_bundle.path / "results", "--out", report)
    assert "models x boards, 2 run(s)" in out and str(damaged / "results.json") in out.replace("\n", "")
    page = (report / "report.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and "| native | standalone |" in line]
    assert [row.split(" | ")[4] for row in rows] == ["10", "12"]  # newest first
    warnings = page[page.index("## Warnings"):page.index("| started (UTC)")]
    assert str(damaged / "results.json") in warnings and "not JSON" in warnings

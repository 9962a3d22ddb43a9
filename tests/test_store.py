"""semhil.store: a folder per run, the `latest` link, and finding runs again (newest first, damage named)."""
from __future__ import annotations

import json

from semhil.report_page import write_report
from semhil.store import LATEST, find_runs, mark_latest, new_run_dir

from test_report_page import make_run


def test_every_run_gets_a_new_folder_named_by_its_utc_start(tmp_path):
    folders = [new_run_dir(tmp_path / "native-standalone") for _ in range(50)]
    assert len({f.name for f in folders}) == 50 and all(f.is_dir() and not any(f.iterdir()) for f in folders)
    assert all(len(f.name) == len("20261201T213015Z-a1b2c3") and f.name[8] == "T" and f.name[15] == "Z" for f in folders)


def test_latest_follows_the_newest_finished_run_and_leaves_nothing_behind(tmp_path):
    first, second = new_run_dir(tmp_path), new_run_dir(tmp_path)
    (first / "results.json").write_text("1")
    (second / "results.json").write_text("2")
    link = mark_latest(first)
    assert (link / "results.json").read_text() == "1"
    mark_latest(second)
    assert (tmp_path / LATEST / "results.json").read_text() == "2" and (tmp_path / LATEST).readlink().name == second.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name, LATEST])


def save_run(folder, run: dict, started: float, run_id: str):
    folder.mkdir(parents=True)
    run = {**run, "started": started, "run_id": run_id}
    (folder / "results.json").write_text(json.dumps(run))
    (folder / "images.jsonl").write_text("{}\n" * run["n_images"])
    return run


def test_runs_in_a_results_folder_are_found_newest_first_each_once(tmp_path):
    results = tmp_path / "results"
    old = save_run(results / "native-standalone" / "a", make_run("tiny", "qemu-stm32f405"), 1000.0, "a")
    new = save_run(results / "native-standalone" / "b", make_run("tiny", "nucleo-f446re"), 2000.0, "b")
    mark_latest(results / "native-standalone" / "b")
    (results / "copy.json").write_text(json.dumps(old))  # a --json copy of the same run
    found = find_runs([results])
    assert [r["run_id"] for r in found.runs] == [new["run_id"], old["run_id"]] and found.warnings == []


def test_a_run_that_never_finished_and_a_truncated_results_json_are_named(tmp_path):
    results = tmp_path / "results"
    kept = save_run(results / "native-standalone" / "a", make_run("tiny", "qemu-stm32f405"), 1000.0, "a")
    crashed = results / "native-standalone" / "b"
    crashed.mkdir()
    (crashed / "images.jsonl").write_text("{}\n" * 7)
    cut = results / "native-standalone" / "c"
    cut.mkdir()
    (cut / "results.json").write_text(json.dumps(kept)[:300])
    found = find_runs([results])
    assert found.runs == [kept]
    assert any(str(crashed) in w and "7 image(s) logged, no results.json" in w for w in found.warnings)
    assert any(str(cut / "results.json") in w and "not JSON" in w for w in found.warnings)

    md_path, html_path = write_report(found.runs, tmp_path / "report", "kept", found.warnings)
    page = md_path.read_text()
    assert "## Warnings" in page and f"- {found.warnings[0]}" in page
    assert "<ul>" in html_path.read_text() and str(cut / "results.json") in html_path.read_text()

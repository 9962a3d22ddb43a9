"""`semhil sweep` end to end on two boards: killed halfway with SIGKILL, resumed, and compared with
a sweep that ran uninterrupted."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from codec_train.bundle import load_bundle

BOARDS = ("native", "qemu-stm32f405")
IMAGES = 120


def sweep_command(bundle_path, out, *extra):
    return [sys.executable, "-c", "from semhil.cli import main; main()", "sweep", str(bundle_path), "--board", ",".join(BOARDS),
            "--images", str(IMAGES), "--ber", "0,0.01,0.05", "--channel", "ge:0.01,8", "--out", str(out), *extra]


def run_sweep(bundle_path, out, *extra):
    done = subprocess.run(sweep_command(bundle_path, out, *extra), capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(scope="module")
def sweep_bundle(bundle, tmp_path_factory):
    """A copy of the session's bundle: the sweeps build into it while the session's boards run theirs."""
    path = tmp_path_factory.mktemp("sweep") / bundle.path.name
    shutil.copytree(bundle.path, path, ignore=shutil.ignore_patterns("build", "results", "device"))
    return load_bundle(path)


def test_a_killed_sweep_resumes_to_the_results_of_an_uninterrupted_one(sweep_bundle, tmp_path):
    whole_out, killed_out = tmp_path / "whole", tmp_path / "killed"
    run_sweep(sweep_bundle.path, whole_out)

    keys = [f"{sweep_bundle.path.name}-{sweep_bundle.hash}-{board}-standalone" for board in BOARDS]
    second_log = killed_out / "runs" / keys[1] / "images.jsonl"
    process = subprocess.Popen(sweep_command(sweep_bundle.path, killed_out), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while len(lines(second_log)) < IMAGES // 3:
        assert process.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and its QEMU
    process.wait()
    measured_before = lines(second_log)
    assert (killed_out / f"{keys[0]}.json").exists() and not (killed_out / f"{keys[1]}.json").exists()
    assert IMAGES // 3 <= len(measured_before) < IMAGES

    output = run_sweep(sweep_bundle.path, killed_out, "--resume")
    assert "sweep: 2 run(s)" in output

    def rows(out):
        return sorted((json.loads(line) for line in lines(out / "results.jsonl")), key=lambda r: (r["run"], r["seed"]))
    assert len(rows(whole_out)) == len(BOARDS) * 4
    assert rows(killed_out) == rows(whole_out)
    resumed_log = lines(second_log)
    assert resumed_log[:len(measured_before) - 1] == measured_before[:-1]  # kept, not sent again (the last may have been cut)
    for key in keys:
        codes = [(r["index"], r["code"]) for r in map(json.loads, lines(killed_out / "runs" / key / "images.jsonl"))]
        assert codes == [(r["index"], r["code"]) for r in map(json.loads, lines(whole_out / "runs" / key / "images.jsonl"))]
        assert [i for i, _ in codes] == list(range(IMAGES))
        whole, resumed = (json.loads((out / f"{key}.json").read_text()) for out in (whole_out, killed_out))
        assert resumed["results"] == whole["results"] and resumed["bit_exact_fraction"] == 1.0


def test_resume_with_other_settings_is_refused(sweep_bundle, tmp_path):
    out = tmp_path / "sweep"
    (out).mkdir()
    (out / "sweep.json").write_text(json.dumps({"bundles": [str(sweep_bundle.path)], "bundle_hashes": [sweep_bundle.hash],
                                                "boards": list(BOARDS), "backend": "standalone", "channels": ["iid:0"],
                                                "images": IMAGES, "seed": 0, "pilots": None}))
    done = subprocess.run(sweep_command(sweep_bundle.path, out, "--resume"), capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 1
    assert "started with other settings (channels: ('iid:0',) before" in done.stdout
    assert not (out / "results.jsonl").exists()

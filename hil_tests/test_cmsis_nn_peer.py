"""The cmsis-nn backend, the peer `semhil bench kernels` measures beside the standalone kernels and NNoM:
the session's codec (the demo's architecture) on the emulated Cortex-M4 and Cortex-M7 boards, every
code equal to the simulator's, with CMSIS-NN's DSP (SMLAD) path in the firmware; and the bench's JSON,
whose ratios come from its own figures."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from codec_train.bundle import load_bundle
from semhil.backends import SYMBOLS_FILE
from semhil.boards import load_board
from semhil.build import build_firmware
from semhil.firmware_check import missing_model_symbols
from semhil.pytest_plugin import skip_unless_available
from semhil.session import RunOptions, run_on_board

SEMHIL = [sys.executable, "-c", "from semhil.cli import main; main()"]


def smlad_count(elf, function: str) -> int:
    listing = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    start = listing.index(f"<{function}>:")
    return listing[start:listing.find("\n\n", start)].count("smlad")


@pytest.mark.parametrize("board_name", ["qemu-stm32f405", "qemu-cortex-m7"])
def test_cmsis_nn_codes_equal_the_simulator_with_the_dsp_path(bundle, board_name, tmp_path):
    skip_unless_available("cmsis-nn")
    board = load_board(board_name)
    firmware = build_firmware(bundle, board, "cmsis-nn")
    assert smlad_count(firmware.path, "arm_nn_mat_mult_kernel_s8_s16") >= 8  # ARM_MATH_DSP from __ARM_FEATURE_DSP
    symbols = json.loads((bundle.path / "device" / "cmsis-nn" / SYMBOLS_FILE).read_text())
    assert {"l1_ohwi", "l2_ohwi"} <= set(symbols["objects"]) and missing_model_symbols(firmware.path, symbols) == []
    result = run_on_board(bundle, board, RunOptions(n_images=1000, backend="cmsis-nn"), firmware=firmware,
                          out_dir=tmp_path / "run")
    assert result["n_images"] == 1000 and result["bit_exact_fraction"] == 1.0
    assert result["backend"] == "cmsis-nn" and result["board_info"]["backend"] == "cmsis-nn"
    conv_times = [row["device_time"] for row in result["layers"] if row["op"] == "conv2d"]
    assert conv_times and all(t > 0 for t in conv_times)


@pytest.fixture(scope="module")
def bench(bundle, tmp_path_factory):
    """`semhil bench kernels` on a copy of the session's bundle, one board, two images."""
    path = tmp_path_factory.mktemp("bench") / bundle.path.name
    shutil.copytree(bundle.path, path, ignore=shutil.ignore_patterns("build", "results", "device", "bench"))
    out = tmp_path_factory.mktemp("bench-json") / "kernels.json"
    done = subprocess.run([*SEMHIL, "bench", "kernels", "--bundle", str(path), "--board", "qemu-stm32f405", "--images", "2",
                           "--json", str(out)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"}, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return load_bundle(path), json.loads(out.read_text()), done.stdout


def test_bench_json_holds_each_backends_figures_and_ratios_from_them(bench):
    bundle, out, stdout = bench
    (cell,) = out["results"]
    assert cell["board"] == "qemu-stm32f405" and cell["images"] == 2 and cell["bundle_hash"] == bundle.hash
    assert out["backends"][0] == "standalone" and set(out["backends"]) == set(cell["backends"])
    assert ("nnom" in out["backends"]) == bool(os.environ.get("NNOM_HOME"))
    assert ("cmsis-nn" in out["backends"]) == bool(os.environ.get("CMSIS_HOME"))
    for name, f in cell["backends"].items():
        assert f["status"] == "measured" and f["n_images"] == 2 and f["bit_exact_fraction"] == 1.0, name
        assert f["per_mac"] == pytest.approx(f["latency_median"] / f["macs"]) and f["unit"] == "instructions"
        assert f["peak_ram_bytes"] == f["arena_bytes"] + f["stack_peak_bytes"] > 0
    standalone = cell["backends"]["standalone"]
    for peer, key in (("nnom", "standalone_over_nnom"), ("cmsis-nn", "standalone_over_cmsis_nn")):
        if peer in cell["backends"]:
            assert cell[key] == pytest.approx(standalone["per_mac"] / cell["backends"][peer]["per_mac"])
        else:
            assert cell[key] is None
    convs = [layer for layer in bundle.graph["layers"] if layer["op"] == "conv2d"]
    assert [row["layer"] for row in cell["layers"]] == [layer["name"] for layer in convs]
    for row in cell["layers"]:
        for name, f in row["backends"].items():
            assert f["time"] > 0 and f["per_mac"] == pytest.approx(f["time"] / row["macs"]), (row["layer"], name)
        if "cmsis-nn" in row["backends"]:
            assert row["standalone_over_cmsis_nn"] == pytest.approx(
                row["backends"]["standalone"]["per_mac"] / row["backends"]["cmsis-nn"]["per_mac"])
    kept = json.loads((bundle.path / "bench" / "kernels" / "latest" / "kernels.json").read_text())
    assert kept == out and out["bench_dir"] in stdout.replace("\n", "")
    assert f"{standalone['per_mac']:.2f}" in stdout

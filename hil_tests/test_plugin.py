"""semhil's pytest plugin from another project's point of view: a test suite of its own, run with a
hardware map of two boards, serially and with pytest-xdist."""
import hashlib
import shutil
import xml.etree.ElementTree as ET
from collections import defaultdict

import pytest

from codec_train.bundle import load_bundle

pytest_plugins = ["pytester"]

SUITE = '''
import os

import pytest
from codec_train.data import load_dataset
from codec_train.simulate import run_graph


def test_info_names_the_bundle(dut, board, bundle):
    assert dut.info()["bundle_hash"] == bundle.hash == board.info["bundle_hash"]


def test_codes_equal_the_simulator(dut, bundle):
    images = load_dataset("mnist5k").x_test[:3]
    _, expected = run_graph(bundle.graph, images)
    assert [dut.infer(image.tobytes()).code for image in images] == [code.tobytes() for code in expected]


@pytest.mark.needs_board(min_ram_kb=512)
def test_only_where_there_is_half_a_megabyte_of_ram(board):
    assert board.config.ram_bytes is None or board.config.ram_bytes >= 512 * 1024


def test_bers_come_from_the_command_line(bers):
    assert bers == (0.0, 0.02)


@pytest.fixture(autouse=True)
def where_it_ran(request, worker_id):
    yield
    if "board" in request.fixturenames:
        with open(os.environ["SEMHIL_WHERE"], "a") as log:
            log.write(f"{request.getfixturevalue('board').config.name} {worker_id} {request.node.name}\\n")
'''

HARDWARE_MAP = '''
[[board]]
name = "native"

[[board]]
name = "qemu-stm32f405"
'''


@pytest.fixture(scope="module")
def plugin_bundle(bundle, tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / bundle.path.name
    shutil.copytree(bundle.path, path, ignore=shutil.ignore_patterns("build", "results", "device"))
    return load_bundle(path)


def run_suite(pytester, monkeypatch, bundle, *args):
    pytester.makepyfile(test_suite=SUITE)
    map_path = pytester.path / "rig.toml"
    map_path.write_text(HARDWARE_MAP)
    where = pytester.path / "where.txt"
    monkeypatch.setenv("SEMHIL_WHERE", str(where))
    result = pytester.runpytest_subprocess("--hardware-map", str(map_path), "--bundle", str(bundle.path), "--ber", "0,0.02",
                                           "--junitxml", str(pytester.path / "junit.xml"), "-p", "no:cacheprovider", "-rs", *args)
    lines = [line.split() for line in where.read_text().splitlines()] if where.exists() else []
    return result, lines, ET.parse(pytester.path / "junit.xml")


def provenance(junit):
    """board -> {property: values} over every test case of the JUnit XML."""
    found = defaultdict(lambda: defaultdict(set))
    for case in junit.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "board" in props:
            for key, value in props.items():
                found[props["board"]][key].add(value)
    return found


def test_a_hardware_map_of_two_boards_runs_the_suite_on_both(pytester, monkeypatch, plugin_bundle):
    result, where, junit = run_suite(pytester, monkeypatch, plugin_bundle)
    result.assert_outcomes(passed=6, skipped=1)
    result.stdout.fnmatch_lines(["*needs 512 KB RAM, qemu-stm32f405 has 128 KB*"])
    assert sorted(board for board, _, _ in where) == ["native"] * 3 + ["qemu-stm32f405"] * 2
    found = provenance(junit)
    assert set(found) == {"native", "qemu-stm32f405"}
    for board, props in found.items():
        assert props["bundle_hash"] == {plugin_bundle.hash}
        firmware = plugin_bundle.path / "build" / f"{board}-standalone" / "firmware.elf"
        assert props["firmware_sha256"] == {hashlib.sha256(firmware.read_bytes()).hexdigest()}
        assert props["board_serial"] == {"emulated (native)" if board == "native" else "emulated (qemu)"}


def test_with_two_workers_each_board_has_a_worker_of_its_own(pytester, monkeypatch, plugin_bundle):
    result, where, junit = run_suite(pytester, monkeypatch, plugin_bundle, "-n", "2")
    result.assert_outcomes(passed=6, skipped=1)
    workers = defaultdict(set)
    for board, worker, _ in where:
        workers[board].add(worker)
    assert dict(workers) == {"native": {workers["native"].copy().pop()}, "qemu-stm32f405": {workers["qemu-stm32f405"].copy().pop()}}
    assert workers["native"] | workers["qemu-stm32f405"] == {"gw0", "gw1"}
    assert set(provenance(junit)) == {"native", "qemu-stm32f405"}


def test_boards_the_map_lacks_and_silicon_without_a_map_are_usage_errors(pytester, plugin_bundle):
    pytester.makepyfile(test_suite=SUITE)
    (pytester.path / "rig.toml").write_text(HARDWARE_MAP)
    result = pytester.runpytest_subprocess("--hardware-map", "rig.toml", "--board", "qemu-cortex-m7", "--bundle", str(plugin_bundle.path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--board qemu-cortex-m7: not in hardware map rig.toml (it lists native, qemu-stm32f405)*"])
    result = pytester.runpytest_subprocess("--board", "nucleo-f446re", "--bundle", str(plugin_bundle.path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*board nucleo-f446re is on an ST-LINK: list it in a hardware map*"])

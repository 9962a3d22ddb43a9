"""Boards in labgrid places, with a real labgrid on localhost (semhil.places.localhost): a coordinator
and an exporter on free ports (both stopped at the end). The exporter serves two native boards'
pseudo-terminals with ser2net (RawSerialPort: places native-1 and native-2) and passes on a third
board served by `semhil serve` (NetworkSerialPort: place native-3); every place is tagged board=native."""
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from semhil.boards import load_board
from semhil.build import build_firmware
from semhil.places.board import PlaceBoard, PlaceChoice
from semhil.places.coordinator import PlaceHeld
from semhil.places.localhost import LocalLab, free_port
from semhil.remote import PortServer
from semhil.runners import BoardProcess

pytest_plugins = ["pytester"]
HOLDER = f"{os.environ.get('LG_HOSTNAME', socket.gethostname())}/{os.environ.get('LG_USERNAME', getpass.getuser())}"


def wait_for(condition, what: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)
    return found


@pytest.fixture(scope="module")
def lab(bundle, tmp_path_factory):
    if shutil.which("ser2net") is None and not os.path.isfile("/usr/sbin/ser2net"):
        pytest.fail("ser2net not found: `make test` installs it (apt-get install ser2net)")
    native = load_board("native")
    firmware = build_firmware(bundle, native)
    with BoardProcess(native, firmware.path) as one, BoardProcess(native, firmware.path) as two, \
            BoardProcess(native, firmware.path) as three, PortServer(three.port) as served:
        exports = {"native-1": {"RawSerialPort": {"port": one.port, "speed": 115200}},
                   "native-2": {"RawSerialPort": {"port": two.port, "speed": 115200}},
                   "native-3": {"NetworkSerialPort": {"host": "127.0.0.1", "port": served.tcp_port, "speed": 115200}}}
        with LocalLab(tmp_path_factory.mktemp("lab"), exports) as lab:
            for name in exports:
                lab.add_place(name, "native", name)
            lab.add_place("no-port", "native")
            lab.add_place("wrong-board", "qemu-stm32f405", "native-2")
            lab.client("-p", "offline", "create")
            lab.client("-p", "offline", "add-match", "rig9/native-1/*")
            lab.client("-p", "offline", "set-tags", "board=native")
            yield lab


def semhil(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from semhil.cli import main; main()", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "300"})  # doctor's table, unwrapped


def test_fifty_images_bit_exact_through_a_place_which_is_released_after(lab, bundle):
    done = semhil("run", str(bundle.path), "--place", "native-1", "--coordinator", lab.address, "--images", "50", "--ber", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    result_dir = max((bundle.path / "results" / "native-standalone").glob("2*"), key=lambda p: p.stat().st_mtime)
    result = json.loads((result_dir / "results.json").read_text())
    assert result["board"] == "native" and result["n_images"] == 50 and result["bit_exact_fraction"] == 1.0
    assert result["labgrid_place"] == "native-1" and lab.holder_of("native-1") is None


def test_a_place_whose_board_is_served_by_semhil_serve(lab, bundle, tmp_path):
    done = semhil("run", str(bundle.path), "--place", "native-3", "--coordinator", lab.address, "--images", "20", "--ber", "0",
                  "--json", str(tmp_path / "native-3.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "native-3.json").read_text())
    assert result["labgrid_place"] == "native-3" and result["n_images"] == 20 and result["bit_exact_fraction"] == 1.0
    assert lab.holder_of("native-3") is None


def test_ctrl_c_releases_the_place(lab, bundle):
    run = subprocess.Popen([sys.executable, "-c", "from semhil.cli import main; main()", "run", str(bundle.path), "--place", "native-1",
                            "--coordinator", lab.address, "--images", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: lab.holder_of("native-1") == HOLDER or run.poll() is not None, "the run to hold the place")
    time.sleep(2)  # into the images
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130 and out.rstrip().endswith("aborted"), out + err
    assert lab.holder_of("native-1") is None
    assert "ended without releasing" not in err  # released by the run itself, not by its keeper


def test_a_sweep_runs_on_the_place_of_a_hardware_map_entry(lab, bundle, tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text(f'[[board]]\nname = "native"\nlabgrid_place = "native-2"\nlabgrid_coordinator = "{lab.address}"\n')
    out = tmp_path / "sweep"
    done = semhil("sweep", str(bundle.path), "--board", "native", "--hardware-map", str(rig), "--images", "20", "--ber", "0,0.01",
                  "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(next(out.glob("*-native-standalone.json")).read_text())
    assert result["labgrid_place"] == "native-2" and result["bit_exact_fraction"] == 1.0 and result["n_images"] == 20
    assert lab.holder_of("native-2") is None


def test_a_second_session_is_refused_with_the_holders_name_until_the_killed_holder_is_released(lab, bundle):
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from semhil.boards import load_board
from semhil.places.board import PlaceBoard, PlaceChoice
board = PlaceBoard(load_board("native"), None, PlaceChoice("native-1", "{lab.address}"))
board.start()
print("holding", board.port, flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().startswith("holding rfc2217://127.0.0.1:")
        assert lab.holder_of("native-1") == HOLDER
        with pytest.raises(PlaceHeld, match=f"place native-1 is held by {HOLDER} "):
            PlaceBoard(load_board("native"), None, PlaceChoice("native-1", lab.address)).start()
        done = semhil("run", str(bundle.path), "--place", "native-1", "--coordinator", lab.address, "--images", "5")
        assert done.returncode == 1 and done.stdout.strip().startswith(f"error: place native-1 is held by {HOLDER}")
        assert len(done.stdout.strip().splitlines()) == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    wait_for(lambda: lab.holder_of("native-1") is None, "the keeper to release the killed holder's place")
    with PlaceBoard(load_board("native"), None, PlaceChoice("native-1", lab.address)) as board:
        assert board.port.startswith("rfc2217://") and lab.holder_of("native-1") == HOLDER
    assert lab.holder_of("native-1") is None


@pytest.mark.parametrize("args, said", [
    (("--place", "natve-1"), "there is no labgrid place 'natve-1' at the coordinator {address} (did you mean 'native-1'?)"),
    (("--place", "no-port"), "place no-port has no serial port (it matches: nothing)"),
    (("--place", "offline"), "none of place offline's resources is online (it matches rig9/native-1/*): is its exporter running?"),
    (("--place", "wrong-board", "--board", "native"), "place wrong-board holds a qemu-stm32f405 (its tag board=qemu-stm32f405), not a native"),
    (("--place", "wrong-board"), "the board answering as qemu-stm32f405 runs firmware built for board native"),
])
def test_bad_places_are_one_clear_line_each(lab, bundle, args, said):
    done = semhil("run", str(bundle.path), *args, "--coordinator", lab.address, "--images", "5")
    assert done.returncode == 1
    assert done.stdout.strip().startswith("error: " + said.format(address=lab.address)), done.stdout + done.stderr
    assert len(done.stdout.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert all(lab.holder_of(place) is None for place in ("native-1", "native-2", "native-3", "no-port", "wrong-board", "offline"))


def test_a_coordinator_that_is_not_running_is_one_clear_line(bundle):
    address = f"127.0.0.1:{free_port()}"
    done = semhil("run", str(bundle.path), "--place", "native-1", "--coordinator", address, "--images", "5")
    assert done.returncode == 1 and len(done.stdout.strip().splitlines()) == 1 and done.stderr == ""
    assert done.stdout.startswith(f"error: the labgrid coordinator at {address} does not answer")


SUITE = '''
import os


def test_codes_come_back(dut, board):
    assert dut.info()["board"] == "native"
    with open(os.environ["SEMHIL_WHERE"], "a") as log:
        log.write(f"{board.target.place.name} {os.environ.get('PYTEST_XDIST_WORKER', 'main')}\\n")


def test_the_place_is_held_while_the_session_runs(board):
    from semhil.places.coordinator import Coordinator
    with Coordinator(board.target.place.coordinator) as coordinator:
        assert coordinator.place(board.target.place.name).acquired is not None
'''


def test_pytest_with_two_workers_gives_each_place_a_worker_of_its_own(lab, bundle, pytester, monkeypatch):
    pytester.makepyfile(test_suite=SUITE)
    where = pytester.path / "where.txt"
    monkeypatch.setenv("SEMHIL_WHERE", str(where))
    result = pytester.runpytest_subprocess("--place", "native-1,native-2", "--coordinator", lab.address, "--bundle", str(bundle.path),
                                           "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    workers = defaultdict(set)
    for place, worker in (line.split() for line in where.read_text().splitlines()):
        workers[place].add(worker)
    assert set(workers) == {"native-1", "native-2"} and all(len(w) == 1 for w in workers.values())
    assert workers["native-1"] != workers["native-2"]
    assert lab.holder_of("native-1") is None and lab.holder_of("native-2") is None


def test_doctor_checks_that_the_coordinator_answers_for_each_configured_place(lab, tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text(f'[[board]]\nname = "native"\nlabgrid_place = "native-2"\nlabgrid_coordinator = "{lab.address}"\n')
    done = semhil("doctor", "--place", "native-1", "--coordinator", lab.address, "--hardware-map", str(rig))
    assert done.returncode == 0, done.stdout
    assert "labgrid place native-1" in done.stdout and "labgrid place native-2" in done.stdout
    assert done.stdout.count("board=native, free") == 2
    elsewhere = f"127.0.0.1:{free_port()}"
    done = semhil("doctor", "--place", "native-1", "--coordinator", elsewhere)
    assert done.returncode == 1 and "error: 1 required thing(s) are missing: labgrid place native-1" in done.stdout

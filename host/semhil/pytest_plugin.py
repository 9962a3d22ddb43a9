"""semhil's pytest plugin (entry point `pytest11`): boards under test from --board or a hardware
map, one firmware per bundle x board x backend, and the fixtures a HIL test needs.

    pytest --board native,qemu-stm32f405 --bundle runs/demo-… --ber 0,0.01
    pytest --hardware-map rig.toml -n 2        # pytest-xdist: one worker per board
    pytest --place rig-f446-1,rig-f446-2 -n 2  # boards in labgrid places (tag board=NAME): one worker per place

Fixtures: `board` (the board running the bundle's firmware, session scope), `dut` (a connection to
it, INFO already asked: info(), infer(image) sends an image in chunks of rows and returns its code),
`bundle`, `firmware`, `board_config` (the board file), `backend`, `bers`.
Marker: @pytest.mark.needs_board(min_ram_kb=…, min_flash_kb=…, core=…, run_kind=…) skips the boards
that lack it. JUnit XML (--junitxml) gets each test's board, bundle hash, firmware hash and board serial.
"""
from __future__ import annotations

import fcntl
import os
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from codec_train.bundle import file_sha256

from .boards import Board, load_board
from .cli import DEFAULT_BER_TEXT, parse_bers
from .discovery import ProbeChoice, read_hardware_map
from .errors import SemhilError
from .places.board import PlaceChoice, board_for_place

DEFAULT_BOARDS = "native"
DEFAULT_BACKENDS = "standalone"
TARGETS = pytest.StashKey[list]()


@dataclass(frozen=True)
class Target:
    """One board under test: its board file and how it is reached."""
    id: str
    config: Board
    probe: ProbeChoice | None = None  # a silicon board flashed through this ST-LINK
    port_url: str | None = None       # a board already running its firmware there
    place: PlaceChoice | None = None  # the board of this labgrid place, held while the session runs

    @property
    def shared_port(self) -> str | None:
        """The port two workers must never open together (emulated boards get one each)."""
        if self.place:
            return f"labgrid-place-{self.place.name}"
        return self.port_url or (self.probe.serial if self.probe else None)

    @property
    def serial_number(self) -> str:
        if self.place:
            return f"labgrid place {self.place.name}"
        if self.probe:
            return self.probe.serial
        return f"at {self.port_url}" if self.port_url else f"emulated ({self.config.run_kind})"


def pytest_addoption(parser):
    group = parser.getgroup("semhil", "semhil hardware-in-the-loop")
    group.addoption("--board", help="comma-separated boards to test (board files; default: the ini option "
                                    f"semhil_boards, else {DEFAULT_BOARDS}); with --hardware-map: which of its boards")
    group.addoption("--hardware-map", type=Path, help="TOML file of the boards attached to this rig (semhil boards "
                                                      "--generate-hardware-map); every board in it is tested")
    group.addoption("--place", help="comma-separated labgrid places to test the boards of (each place's tag board=NAME "
                                    "names its board); each is held while the session runs")
    group.addoption("--coordinator", help="the labgrid coordinator of --place, HOST:PORT (default: LG_COORDINATOR, else 127.0.0.1:20408)")
    group.addoption("--bundle", type=Path, help="bundle to test (default: a tiny codec trained for the session)")
    group.addoption("--backend", help=f"comma-separated backends (default: ini semhil_backends, else {DEFAULT_BACKENDS})")
    group.addoption("--ber", help=f"comma-separated bit error rates for the `bers` fixture (default {DEFAULT_BER_TEXT})")
    parser.addini("semhil_boards", f"boards tested when --board is not given (default {DEFAULT_BOARDS})")
    parser.addini("semhil_backends", f"backends tested when --backend is not given (default {DEFAULT_BACKENDS})")


def pytest_configure(config):
    config.stash[TARGETS] = targets(config)  # a misspelt board or a broken map is a usage error, before collection
    config.addinivalue_line("markers", "needs_board(min_ram_kb=None, min_flash_kb=None, core=None, run_kind=None): "
                                       "run only on boards with at least this RAM/flash, this core or run kind")


def _names(text: str, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise pytest.UsageError(f"{what} is empty: give comma-separated names")
    return names


def targets(config) -> list[Target]:
    """The boards under test, from --hardware-map (filtered by --board) or --board."""
    chosen = config.getoption("--board")
    map_path = config.getoption("--hardware-map")
    places = config.getoption("--place")
    try:
        if places:
            if chosen or map_path:
                raise SemhilError("--place names the boards (each place's tag board=NAME): drop --board and --hardware-map")
            choices = [PlaceChoice(name, config.getoption("--coordinator")) for name in _names(places, "--place")]
            found = [(board_for_place(choice, None), choice) for choice in choices]
            repeated = {b for b, _ in found if sum(x == b for x, _ in found) > 1}
            return [Target(f"{b}-{c.name}" if b in repeated else b, load_board(b), place=c) for b, c in found]
        if map_path is None:
            names = _names(chosen or config.getini("semhil_boards") or DEFAULT_BOARDS, "--board")
            found = [Target(name, load_board(name)) for name in names]
            for t in found:
                if t.config.run_kind == "probe":
                    raise SemhilError(f"board {t.id} is on an ST-LINK: list it in a hardware map and give --hardware-map FILE")
            return found
        entries = read_hardware_map(map_path)
    except SemhilError as e:
        raise pytest.UsageError(str(e)) from None
    if chosen:
        wanted = _names(chosen, "--board")
        missing = set(wanted) - {e.name for e in entries}
        if missing:
            raise pytest.UsageError(f"--board {', '.join(sorted(missing))}: not in hardware map {map_path} "
                                    f"(it lists {', '.join(e.name for e in entries)})")
        entries = [e for e in entries if e.name in wanted]
    repeated = {e.name for e in entries if sum(x.name == e.name for x in entries) > 1}
    found = []
    for e in entries:
        probe = e.probe_choice()
        ident = f"{e.name}-{e.probe_serial or e.port or e.labgrid_place}" if e.name in repeated else e.name
        found.append(Target(ident, load_board(e.name), probe, None if probe else e.port, e.place_choice()))
    return found


def _parametrizes(metafunc, name: str) -> bool:
    """Whether the test parametrizes `name` itself."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if name in ([n.strip() for n in names.split(",")] if isinstance(names, str) else names):
            return True
    return False


def pytest_generate_tests(metafunc):
    if "semhil_target" in metafunc.fixturenames:
        found = metafunc.config.stash[TARGETS]
        metafunc.parametrize("semhil_target", found, ids=[t.id for t in found], scope="session", indirect=True)
    if "backend" in metafunc.fixturenames and not _parametrizes(metafunc, "backend"):
        text = metafunc.config.getoption("--backend") or metafunc.config.getini("semhil_backends") or DEFAULT_BACKENDS
        metafunc.parametrize("backend", _names(text, "--backend"), scope="session")


def board_of(nodeid: str, target_ids: list[str]) -> str | None:
    """The board a test runs on, from its parameter ids (e.g. test_x[qemu-stm32f405-standalone])."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    params = nodeid[nodeid.index("[") + 1:-1]
    for ident in sorted(target_ids, key=len, reverse=True):
        if params == ident or params.startswith(ident + "-") or params.endswith("-" + ident) or f"-{ident}-" in params:
            return ident
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With pytest-xdist's -n, every test of one board goes to one worker (tests without a board are spread)."""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling
    target_ids = [t.id for t in config.stash[TARGETS]]

    class OneWorkerPerBoard(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return board_of(nodeid, target_ids) or nodeid

    return OneWorkerPerBoard(config, log)


def missing_capability(board: Board, min_ram_kb=None, min_flash_kb=None, core=None, run_kind=None) -> str | None:
    """Why the board cannot run a test marked needs_board(...), or None. A native board has no memory limit."""
    if min_ram_kb is not None and board.ram_bytes is not None and board.ram_bytes < min_ram_kb * 1024:
        return f"needs {min_ram_kb} KB RAM, {board.name} has {board.ram_bytes // 1024} KB"
    if min_flash_kb is not None and board.flash_bytes is not None and board.flash_bytes < min_flash_kb * 1024:
        return f"needs {min_flash_kb} KB flash, {board.name} has {board.flash_bytes // 1024} KB"
    if core is not None and board.core != core:
        return f"needs a {core} core, {board.name} has a {board.core}"
    if run_kind is not None and board.run_kind != run_kind:
        return f"needs a {run_kind} board, {board.name} is {board.run_kind}"
    return None


def pytest_runtest_setup(item):
    target = getattr(item, "callspec", None) and item.callspec.params.get("semhil_target")
    if target is None:
        return
    for mark in item.iter_markers("needs_board"):
        reason = missing_capability(target.config, **mark.kwargs)
        if reason:
            pytest.skip(reason)


@pytest.fixture(scope="session")
def semhil_target(request) -> Target:
    return request.param


@pytest.fixture(scope="session")
def board_config(semhil_target) -> Board:
    return semhil_target.config


@pytest.fixture(scope="session")
def bers(pytestconfig) -> tuple[float, ...]:
    try:
        return parse_bers(pytestconfig.getoption("--ber") or DEFAULT_BER_TEXT)
    except SemhilError as e:
        raise pytest.UsageError(str(e)) from None


def _shared_dir(tmp_path_factory) -> Path:
    """A folder every xdist worker of this run sees (each worker's own basetemp is below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def bundle(pytestconfig, tmp_path_factory):
    from rich.progress import Progress
    from codec_train.bundle import load_bundle
    from codec_train.train import PRESETS, cached_bundle
    path = pytestconfig.getoption("--bundle")
    if path is not None:
        try:
            return load_bundle(path)
        except SemhilError as e:
            raise pytest.UsageError(f"--bundle: {e}") from None
    shared = _shared_dir(tmp_path_factory)
    with (shared / "semhil-bundle.lock").open("a") as lock, Progress(disable=True) as progress:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker trains, the others wait and load it
        return cached_bundle(PRESETS["tiny"], shared, "tiny", progress)


def skip_unless_available(backend: str, board: Board | None = None) -> None:
    """Skips a test of the nnom backend where NNOM_HOME names no NNoM checkout, of the cmsis-nn backend
    where CMSIS_HOME names no CMSIS_5 tree, of a MicroPython board where MICROPY_HOME names no MicroPython
    (or with another backend than standalone: its module is built from that one)."""
    if board is not None and board.run_kind == "micropython":
        if backend != "standalone":
            pytest.skip(f"{board.name} runs the standalone backend's native module only, not {backend}")
        if not os.environ.get("MICROPY_HOME"):
            pytest.skip("MicroPython boards need MICROPY_HOME (a MicroPython checkout: make micropython)")
    if backend == "nnom" and not os.environ.get("NNOM_HOME"):
        pytest.skip("the nnom backend needs NNOM_HOME (an NNoM checkout: make nnom)")
    if backend == "cmsis-nn" and not os.environ.get("CMSIS_HOME"):
        pytest.skip("the cmsis-nn backend needs CMSIS_HOME (a CMSIS_5 tree at 5.9.0: make cmsis)")


@pytest.fixture(scope="session")
def firmware(bundle, board_config, backend):
    from .build import build_firmware
    skip_unless_available(backend, board_config)
    return build_firmware(bundle, board_config, backend)


class PortInUse(SemhilError):
    """Another test process holds the board's port."""


def lock_port(port: str, stack: ExitStack) -> None:
    """Hold the port for this process until the stack closes: never two workers (or two runs) on one board."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", port)
    lock = stack.enter_context(open(f"/tmp/semhil-port-{name}.lock", "a+"))
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        raise PortInUse(f"{port} is in use by another test process ({lock.read().strip() or 'unknown'}); "
                        "run one pytest per rig, with -n for one worker per board") from None
    lock.truncate(0)
    lock.write(f"pid {os.getpid()} worker {os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
    lock.flush()


@dataclass
class RunningBoard:
    """A board running the bundle's firmware, started (or flashed) and reset for the session."""
    target: Target
    firmware: object  # build.Firmware
    process: object   # runners.BoardProcess, flash.ProbeBoard or runners.AttachedBoard
    info: dict

    @property
    def config(self) -> Board:
        return self.target.config

    @property
    def port(self) -> str:
        return self.process.port

    @property
    def provenance(self) -> dict[str, str]:
        return {"board": self.target.id, "bundle_hash": self.info.get("bundle_hash", ""),
                "firmware_sha256": file_sha256(self.firmware.path), "board_serial": self.target.serial_number}


@pytest.fixture(scope="session")
def board(semhil_target, bundle, firmware):
    from .dut import Dut
    from .runners import open_board
    from .session import check_firmware
    with ExitStack() as stack:
        if semhil_target.shared_port:
            lock_port(semhil_target.shared_port, stack)
        # started fresh, or flashed (which resets); a board at a URL runs as it is
        process = stack.enter_context(open_board(semhil_target.config, firmware.path, semhil_target.probe, semhil_target.port_url,
                                                 semhil_target.place))
        with Dut(process.port, semhil_target.id, baud=semhil_target.config.uart_baud) as dut:
            info = dut.wait_ready()
        check_firmware(info, bundle, semhil_target.config)
        yield RunningBoard(semhil_target, firmware, process, info)


@pytest.fixture(autouse=True)
def _semhil_provenance(request):
    """Which bundle, firmware and board a test ran on, in the JUnit XML as <property> elements."""
    if "board" in request.fixturenames:
        for key, value in request.getfixturevalue("board").provenance.items():
            request.node.user_properties.append((key, value))


@pytest.fixture
def dut(board):
    from .dut import Dut
    with Dut(board.port, board.target.id, baud=board.config.uart_baud, timeout_s=5.0, reset=board.process.restart) as d:
        d.wait_ready()
        yield d

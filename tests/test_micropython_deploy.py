"""Deploying the device half onto a MicroPython board with mpremote: the board's facts, the checks of a
module against them, the RAM filesystem at /ram, starting the program, and releasing a board that still
runs it. Against MicroPython's qemu port (MPS2_AN500) under QEMU, with natmods built from its features0."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from semhil.errors import SemhilError
from semhil.micropython.deploy import (HEAP_MARGIN, MODULE_NAME, PROGRAM_NAME, RAMFS, BoardFacts, ModuleFile,
                                       check_module, deploy, deploy_commands, heap_needed, parse_facts, probe_code,
                                       read_module, release, run_mpremote)
from semhil.boards import load_board
from semhil.micropython.home import mpremote_command
from semhil.protocol import MsgType, encode_frame
from semhil.runners import BoardProcess

needs_micropython = pytest.mark.skipif(not os.environ.get("MICROPY_HOME"),
                                       reason="needs MICROPY_HOME (a MicroPython checkout: make micropython)")

# A throwaway program in place of device/micropython/semhil_dut.py: it uses the module and returns.
PROGRAM = """
import semhil_model

RESULT = None


def main(board, timer):
    global RESULT
    RESULT = (board, timer, semhil_model.factorial(10))
    print("started", RESULT)
"""

# One that keeps the board like semhil_dut does (Ctrl-C off, stdin taken) until it gets RELEASE.
SERVING_PROGRAM = """
import micropython
import sys


def main(board, timer):
    micropython.kbd_intr(-1)
    frame = b""
    while True:
        c = sys.stdin.buffer.read(1)
        if c != b"\\x00":
            frame += c
        elif frame == {release!r}:
            break
        else:
            frame = b""
    sys.stdout.buffer.write({released!r})
    micropython.kbd_intr(3)
"""

@pytest.fixture(scope="session")
def micropython_home():
    if not os.environ.get("MICROPY_HOME"):
        pytest.skip("needs MICROPY_HOME (a MicroPython checkout: make micropython)")
    return Path(os.environ["MICROPY_HOME"])


@pytest.fixture(scope="session")
def natmods(micropython_home, tmp_path_factory):
    """MicroPython's examples/natmod/features0 built for three arches: {arch: path of features0.mpy}."""
    built = {}
    for arch in ("armv7emdp", "armv7emsp", "x64"):
        folder = tmp_path_factory.mktemp(f"features0-{arch}")
        shutil.copytree(micropython_home / "examples" / "natmod" / "features0", folder, dirs_exist_ok=True)
        done = subprocess.run(["make", f"ARCH={arch}", f"MPY_DIR={micropython_home}", f"PYTHON={sys.executable}"],
                              cwd=folder, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        built[arch] = folder / "features0.mpy"
    return built


@pytest.fixture(scope="session")
def qemu_firmware(micropython_home):
    from semhil.micropython.home import build_micropython
    return build_micropython("qemu", "MPS2_AN500")


@pytest.fixture
def qemu_board(qemu_firmware):
    """A fresh QEMU MPS2_AN500 running MicroPython (started as semhil starts micropython-qemu-m7): its serial port."""
    with BoardProcess(load_board("micropython-qemu-m7"), qemu_firmware) as qemu:
        yield qemu.port


def write_program(folder: Path, text: str) -> Path:
    path = folder / PROGRAM_NAME
    path.write_text(text)
    return path


def on_board(port: str, code: str) -> str:
    """What `code` prints on the board, run without the soft reset that would clear /ram."""
    return run_mpremote([*mpremote_command(), "connect", port, "resume", "exec", code], "qemu").strip()


def probe(port: str, timeout_s: float = 30) -> BoardFacts:
    command = deploy_commands(port, Path("m.mpy"), Path("p.py"), "qemu", "us")[0]
    return parse_facts(run_mpremote(command, "qemu", timeout_s), "qemu")


def with_header(source: Path, folder: Path, **bytes_at: int) -> Path:
    """A copy of a .mpy with header bytes replaced ({'b1': 7}: byte 1 becomes 7)."""
    data = bytearray(source.read_bytes())
    for key, value in bytes_at.items():
        data[int(key[1:])] = value
    path = folder / f"changed-{len(list(folder.iterdir()))}.mpy"
    path.write_bytes(bytes(data))
    return path


# --- the board's facts


@needs_micropython
def test_probe_reads_the_qemu_boards_facts(qemu_board):
    facts = probe(qemu_board)
    assert (facts.mpy_version, facts.mpy_sub_version, facts.arch) == (6, 3, "armv7emdp")
    assert re.fullmatch(r"1\.\d+\.\d+(-\w+)?", facts.micropython) and "Cortex-M7" in facts.machine
    assert 100_000 < facts.heap_free < 1_000_000 and 0 < facts.heap_used < facts.heap_free


def test_facts_decode_the_mpy_field_and_version():
    line = "SEMHIL-FACTS ((1, 24, 1), 'PYBv1.1 with STM32F405RG', 7942, 100000, 2000)"  # 0x1F06: .mpy 6, sub 3, arch 7
    facts = parse_facts("soft reboot\n" + line + "\n", "pyboard")
    assert facts == BoardFacts("1.24.1", "PYBv1.1 with STM32F405RG", 6, 3, "armv7emsp", 100000, 2000)
    no_native = parse_facts("SEMHIL-FACTS ((1, 23, 0, ''), 'x', 774, 5, 6)", "b")  # 0x0306: .mpy 6.3, no arch
    assert (no_native.micropython, no_native.mpy_version, no_native.mpy_sub_version) == ("1.23.0", 6, 3)
    assert no_native.arch is None
    assert parse_facts("SEMHIL-FACTS ((1, 29, 0, 'preview'), 'y', None, 5, 6)", "b").mpy_version is None
    assert "SEMHIL-FACTS" in probe_code() and "\n" not in probe_code()


def test_a_board_that_does_not_answer_the_probe_is_named_with_what_it_printed():
    with pytest.raises(SemhilError) as e:
        parse_facts("Traceback (most recent call last):\nNameError: name 'gc' isn't defined\n", "pyboard-v1.1")
    message = str(e.value)
    assert "pyboard-v1.1" in message and "NameError" in message and "MicroPython" in message and "\n" not in message
    with pytest.raises(SemhilError, match="printed: nothing"):
        parse_facts("", "openmv-h7")


# --- the module's header and the checks


@needs_micropython
def test_read_module_decodes_version_and_arch(natmods, tmp_path):
    for arch, path in natmods.items():
        module = read_module(path)
        assert (module.version, module.sub_version, module.arch) == (6, 3, arch)
        assert module.size == path.stat().st_size and module.path == path
    with pytest.raises(SemhilError, match=r"is not a MicroPython \.mpy file"):
        read_module(write_program(tmp_path, PROGRAM))
    with pytest.raises(SemhilError, match="cannot read MicroPython module"):
        read_module(tmp_path / "missing.mpy")


@needs_micropython
def test_a_module_of_another_mpy_version_is_refused_in_one_line(qemu_board, natmods, tmp_path):
    program = write_program(tmp_path, PROGRAM)
    newer = with_header(natmods["armv7emdp"], tmp_path, b1=7)
    with pytest.raises(SemhilError) as e:
        deploy(qemu_board, newer, program, "qemu-mp", "us")
    message = str(e.value)
    assert "\n" not in message and "qemu-mp" in message and "too old" in message
    assert ".mpy 6.3" in message and ".mpy 7.3" in message and "MicroPython 1.29.0" in message
    assert "update its firmware to a MicroPython with .mpy version 7.3" in message

    older_sub = with_header(natmods["armv7emdp"], tmp_path, b2=0x22)  # sub-version 2, arch 8 (armv7emdp)
    with pytest.raises(SemhilError, match=r"is \.mpy 6\.2: the module is too old for the board's MicroPython, "
                                          r"build it with MicroPython 1\.23 or newer") as e:
        check_module(probe(qemu_board), read_module(older_sub), "qemu-mp")
    assert "\n" not in str(e.value)


def test_the_mpy_version_names_the_release_to_install():
    old_board = BoardFacts("1.22.2", "PYBv1.1", 6, 2, "armv7emsp", 100_000, 1_000)
    with pytest.raises(SemhilError, match=r"MicroPython 1\.22\.2 \(\.mpy 6\.2\).*\.mpy 6\.3: the board's "
                                          r"MicroPython is too old, update its firmware to MicroPython 1\.23 or newer"):
        check_module(old_board, ModuleFile(Path("semhil_model.mpy"), 6, 3, "armv7emsp", 1000), "pyboard")
    bytecode = ModuleFile(Path("b.mpy"), 6, 1, None, 1000)  # bytecode: only the version has to match
    check_module(old_board, bytecode, "pyboard")


@needs_micropython
def test_a_module_for_another_arch_is_refused_naming_both(qemu_board, natmods, tmp_path):
    with pytest.raises(SemhilError) as e:
        deploy(qemu_board, natmods["x64"], write_program(tmp_path, PROGRAM), "qemu-mp", "us")
    message = str(e.value)
    assert "built for x64" in message and "is armv7emdp" in message and "ARCH=armv7emdp" in message
    assert "\n" not in message


def test_arch_rule_follows_micropythons_loader():
    m4_board = BoardFacts("1.29.0", "PYBv1.1", 6, 3, "armv7emsp", 100_000, 1_000)
    with pytest.raises(SemhilError, match="built for armv7emdp but board pyboard .* is armv7emsp"):
        check_module(m4_board, ModuleFile(Path("semhil_model.mpy"), 6, 3, "armv7emdp", 1000), "pyboard")
    check_module(m4_board, ModuleFile(Path("m.mpy"), 6, 3, "armv7m", 1000), "pyboard")  # an older Thumb arch loads
    with pytest.raises(SemhilError, match="built for armv7emsp but board pc .* is x64"):
        check_module(BoardFacts("1.29.0", "linux", 6, 3, "x64", 10**6, 0),
                     ModuleFile(Path("m.mpy"), 6, 3, "armv7emsp", 1000), "pc")
    no_native = BoardFacts("1.29.0", "esp8266", 6, 3, None, 100_000, 1_000)
    with pytest.raises(SemhilError, match="cannot load native modules"):
        check_module(no_native, ModuleFile(Path("m.mpy"), 6, 3, "armv7emsp", 1000), "b")
    with pytest.raises(SemhilError, match=r"cannot load \.mpy files"):
        check_module(BoardFacts("1.29.0", "x", None, 0, None, 100_000, 1_000),
                     ModuleFile(Path("m.mpy"), 6, 3, "armv7emsp", 1000), "b")


def test_a_module_too_big_for_the_free_heap_is_refused():
    module = ModuleFile(Path("semhil_model.mpy"), 6, 3, "armv7emdp", 40_000)
    needed = heap_needed(module)
    assert needed == 90_000 + HEAP_MARGIN
    small = BoardFacts("1.29.0", "test", 6, 3, "armv7emdp", heap_free=needed - 1, heap_used=1_000)
    with pytest.raises(SemhilError) as e:
        check_module(small, module, "qemu-mp")
    message = str(e.value)
    assert f"{needed - 1} bytes of free heap" in message and "(40000 bytes)" in message and str(needed) in message
    assert "\n" not in message
    check_module(BoardFacts("1.29.0", "test", 6, 3, "armv7emdp", needed, 1_000), module, "qemu-mp")


# --- loading and starting


@needs_micropython
@pytest.mark.parametrize("arch", ["armv7emdp", "armv7emsp"])
def test_the_module_loads_through_the_ram_fs_and_the_program_starts(qemu_board, natmods, tmp_path, arch):
    commands = deploy(qemu_board, natmods[arch], write_program(tmp_path, PROGRAM), "qemu-mp", "cpu")
    assert commands == deploy_commands(qemu_board, natmods[arch], tmp_path / PROGRAM_NAME, "qemu-mp", "cpu")
    assert on_board(qemu_board, "import semhil_dut; print(semhil_dut.RESULT)") == "('qemu-mp', 'cpu', 3628800)"
    listing = on_board(qemu_board, "import os; print(sorted(os.listdir('/ram')), os.stat('/ram/semhil_model.mpy')[6])")
    assert listing == f"{sorted([MODULE_NAME, PROGRAM_NAME])} {natmods[arch].stat().st_size}"


@needs_micropython
def test_the_ram_fs_serves_mpremotes_file_commands(qemu_board, natmods, tmp_path):
    back = tmp_path / "back.mpy"
    done = subprocess.run([*mpremote_command(), "connect", qemu_board, "run", str(RAMFS), "mkdir", ":/ram/d", "+",
                           "cp", str(natmods["armv7emdp"]), ":/ram/d/", "+",
                           "cp", ":/ram/d/features0.mpy", str(back), "+",
                           "fs", "ls", ":/ram/d", "+", "rm", ":/ram/d/features0.mpy", "+", "fs", "ls", ":/ram/d", "+",
                           "exec", "import os; print('listing', os.listdir('/ram'), os.listdir('/ram/d'))", "df"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert back.read_bytes() == natmods["armv7emdp"].read_bytes()
    assert re.search(r"^\s+176 features0\.mpy$", done.stdout, re.M) and "listing ['d'] []" in done.stdout
    assert re.search(r"RamFS object.* /ram$", done.stdout, re.M)


# --- a board still running the program, release


@needs_micropython
def test_a_busy_board_fails_with_a_hint_and_release_frees_it(qemu_board, natmods, tmp_path):
    serving = SERVING_PROGRAM.format(release=encode_frame(MsgType.RELEASE, 0)[:-1],
                                     released=encode_frame(MsgType.RELEASED, 0))
    program = write_program(tmp_path, serving)
    assert release(qemu_board) is False  # a board at its REPL: nothing answers
    deploy(qemu_board, natmods["armv7emdp"], program, "qemu-mp", "us")
    with pytest.raises(SemhilError) as e:  # Ctrl-C is off: mpremote cannot reach the REPL (and waits forever)
        probe(qemu_board, timeout_s=5)
    message = str(e.value)
    assert f"mpremote connect {qemu_board} exec" in message and "did not finish within 5 s on board qemu" in message
    assert "at its REPL" in message and "resetting the board" in message and "\n" not in message
    assert release(qemu_board) is True
    assert probe(qemu_board).arch == "armv7emdp"
    deploy(qemu_board, natmods["armv7emdp"], program, "qemu-mp", "us")
    deploy(qemu_board, natmods["armv7emdp"], write_program(tmp_path, PROGRAM), "qemu-mp", "us")  # releases first
    assert on_board(qemu_board, "import semhil_dut; print(semhil_dut.RESULT)") == "('qemu-mp', 'us', 3628800)"


def test_release_never_fails_on_a_port_that_does_not_exist():
    assert release("/dev/semhil-no-such-port", timeout_s=0.1) is False
    assert release("id:NO-SUCH-SERIAL", timeout_s=0.1) is False


# --- command lines


def test_silicon_commands_connect_by_usb_serial_number():
    module, program = Path("build/pyboard/semhil_model.mpy"), Path("device/micropython/semhil_dut.py")
    mpremote = [sys.executable, "-m", "mpremote", "connect", "id:1234ABCD"]
    assert deploy_commands("id:1234ABCD", module, program, "pyboard-v1.1", "cpu") == [
        [*mpremote, "exec", probe_code()],
        [*mpremote, "run", str(RAMFS), "cp", "build/pyboard/semhil_model.mpy", ":/ram/semhil_model.mpy", "+",
         "cp", "device/micropython/semhil_dut.py", ":/ram/semhil_dut.py", "+", "exec", "--no-follow",
         "import sys; sys.path.insert(0, '/ram'); import semhil_dut; semhil_dut.main('pyboard-v1.1', 'cpu')"],
    ]
    assert RAMFS.is_file()
    with pytest.raises(SemhilError, match="timer 'ms'.*us, cpu"):
        deploy_commands("id:1234ABCD", module, program, "pyboard-v1.1", "ms")


def test_dry_run_runs_nothing():
    module, program = Path("/nonexistent/semhil_model.mpy"), Path("/nonexistent/semhil_dut.py")
    commands = deploy("/dev/semhil-no-such-port", module, program, "openmv-h7", "us", dry_run=True)
    assert commands == deploy_commands("/dev/semhil-no-such-port", module, program, "openmv-h7", "us")
    with pytest.raises(SemhilError, match="cannot read MicroPython module /nonexistent"):
        deploy("/dev/semhil-no-such-port", module, program, "openmv-h7", "us")


def test_an_mpremote_failure_names_the_command_and_what_it_printed():
    with pytest.raises(SemhilError) as e:
        run_mpremote([*mpremote_command(), "connect", "/dev/semhil-no-such-port", "exec", probe_code()], "openmv-h7")
    message = str(e.value)
    assert "mpremote connect /dev/semhil-no-such-port exec" in message and "failed on board openmv-h7" in message
    assert "/dev/semhil-no-such-port" in message.split("printed:")[1] and "no other program holds the port" in message
    assert "\n" not in message

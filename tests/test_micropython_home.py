"""Finding MicroPython (MICROPY_HOME), building its unix and QEMU ports out of tree into the cache, and mpremote."""
import os
import subprocess
import sys
import threading
import time

import pytest
from elftools.elf.elffile import ELFFile

from semhil.errors import SemhilError
from semhil.micropython.home import MICROPY_FILES, build_micropython, micropy_home, mpremote_command

needs_micropython = pytest.mark.skipif(not os.environ.get("MICROPY_HOME"),
                                       reason="needs MICROPY_HOME (a MicroPython checkout: make micropython)")


@pytest.fixture
def fake_home(tmp_path, monkeypatch):
    """A tree with the files semhil looks for and a unix port whose Makefile the test writes; builds cached in tmp_path."""
    home = tmp_path / "micropython"
    for name in MICROPY_FILES:
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text("")
    monkeypatch.setenv("MICROPY_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return home


def test_unset_micropy_home_says_what_to_do(monkeypatch):
    monkeypatch.delenv("MICROPY_HOME", raising=False)
    with pytest.raises(SemhilError, match="MICROPY_HOME") as e:
        micropy_home()
    assert "`make micropython`" in str(e.value) and "\n" not in str(e.value)


def test_a_folder_that_is_not_micropython_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROPY_HOME", str(tmp_path))
    with pytest.raises(SemhilError, match=r"is not a MicroPython tree \(no py/dynruntime.mk\).*make micropython"):
        micropy_home()
    (tmp_path / "py").mkdir()
    (tmp_path / "py" / "dynruntime.mk").write_text("")
    with pytest.raises(SemhilError, match=r"\(no tools/mpy_ld.py\)"):
        micropy_home()


def test_mpremote_is_pinned_and_runs():
    done = subprocess.run([*mpremote_command(), "version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "1.29.0" in done.stdout, done.stdout + done.stderr


def test_missing_mpremote_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpremote", None)  # makes `import mpremote` fail
    with pytest.raises(SemhilError, match=r"mpremote is missing: .*make venv"):
        mpremote_command()


def test_a_failed_build_names_its_log_and_shows_the_last_lines(fake_home):
    (fake_home / "ports" / "unix" / "Makefile").write_text("all:\n\t@echo 'main.c:1: error: the fake failure'\n\t@false\n")
    with pytest.raises(SemhilError, match="the fake failure") as e:
        build_micropython("unix")
    log = str(e.value).split("see ")[1].split(". ")[0]
    assert log.endswith("build.log") and "the fake failure" in open(log).read()


def test_parallel_callers_build_once_then_reuse(fake_home, tmp_path):
    count = tmp_path / "builds.txt"
    (fake_home / "ports" / "unix" / "Makefile").write_text(
        f"all:\n\tsleep 1\n\tmkdir -p $(BUILD)\n\techo built >> {count}\n\tcp /bin/true $(BUILD)/$(PROG)\n")
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(build_micropython("unix"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(paths) == 3 and len(set(paths)) == 1 and count.read_text() == "built\n"
    stamp = paths[0].parent.parent / "built-by.txt"
    assert "-j2" in stamp.read_text() and "MICROPY_PY_FFI=0" in stamp.read_text()


def test_make_missing_says_which_package(fake_home, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SemhilError, match="make not found .*apt-get install make"):
        build_micropython("unix")


@needs_micropython
def test_an_unknown_qemu_board_lists_the_boards():
    with pytest.raises(SemhilError, match="no board NOPE .*MPS2_AN500"):
        build_micropython("qemu", "NOPE")


@needs_micropython
def test_qemu_port_builds_out_of_tree_once(tmp_path, monkeypatch):
    """A real build (about 20 s) into a cache of this test's own, so that it always builds."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = tmp_path / "before"
    before.touch()
    time.sleep(0.01)
    elf = build_micropython("qemu", "MPS2_AN500")
    assert elf.name == "firmware.elf" and elf.is_relative_to(tmp_path / "cache" / "semhil" / "micropython-builds")
    with elf.open("rb") as f:
        header = ELFFile(f).header
        assert header.e_machine == "EM_ARM" and header.e_type == "ET_EXEC"
    written = subprocess.run(["find", str(micropy_home()), "-newer", str(before)], capture_output=True, text=True)
    assert written.returncode == 0 and written.stdout == "", "written inside MICROPY_HOME:\n" + written.stdout
    stamp = elf.parent.parent / "built-by.txt"
    stamped = stamp.stat().st_mtime_ns
    start = time.monotonic()
    assert build_micropython("qemu", "MPS2_AN500") == elf
    assert time.monotonic() - start < 1 and stamp.stat().st_mtime_ns == stamped


@needs_micropython
def test_unix_port_runs_python(tmp_path):
    """Built in the default cache (about a minute the first time), shared with the tests of the micropython-unix board."""
    before = tmp_path / "before"
    before.touch()
    time.sleep(0.01)
    exe = build_micropython("unix")
    assert exe.name == "micropython" and "micropython-builds" in str(exe)
    done = subprocess.run([str(exe), "-c", "import sys; print(sys.implementation._mpy)"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0
    written = subprocess.run(["find", str(micropy_home()), "-newer", str(before)], capture_output=True, text=True)
    assert written.returncode == 0 and written.stdout == "", "written inside MICROPY_HOME:\n" + written.stdout

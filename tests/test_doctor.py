"""`semhil doctor` on this computer, and on one where things are missing."""
import os
import subprocess
import sys

from semhil import discovery, doctor
from semhil.discovery import Probe


def semhil_doctor(env=None):
    return subprocess.run([sys.executable, "-c", "from semhil.cli import main; main()", "doctor"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_everything_make_test_needs_is_found_here():
    checks = doctor.run_checks()
    assert [c.what for c in checks if c.required and not c.ok] == []
    done = semhil_doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mps2-an500" in done.stdout and "everything the native and QEMU boards need is here" in done.stdout


def test_missing_qemu_is_named_with_the_package_and_fails(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gcc", "arm-none-eabi-gcc", "git"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    done = semhil_doctor({"PATH": str(bin_dir)})
    assert done.returncode == 1
    assert "qemu-system-arm not found" in done.stdout and "apt-get install qemu-system-arm" in done.stdout
    assert "QEMU (qemu-stm32f405, qemu-cortex-m7)" in done.stdout + done.stderr


def test_a_wrong_nnom_home_is_explained_but_optional(tmp_path, monkeypatch):
    monkeypatch.setenv("NNOM_HOME", str(tmp_path))
    check = doctor.check_nnom()
    assert not check.ok and not check.required and "is not an NNoM checkout" in check.found and "make nnom" in check.fix


def test_cmsis_home_unset_or_wrong_is_explained_but_optional(tmp_path, monkeypatch):
    monkeypatch.delenv("CMSIS_HOME", raising=False)
    check = doctor.check_cmsis()
    assert not check.ok and not check.required and check.found == "CMSIS_HOME is not set" and "make cmsis" in check.fix
    monkeypatch.setenv("CMSIS_HOME", str(tmp_path))
    check = doctor.check_cmsis()
    assert not check.ok and not check.required and "is not a CMSIS_5 tree" in check.found and "5.9.0" in check.fix


def test_a_probe_port_without_permission_says_how_to_get_it(monkeypatch):
    probe = Probe("/dev/ttyACM-does-not-exist", 0x0483, 0x374B, "0671FF", "STM32 STLink", ("nucleo-f446re",))
    monkeypatch.setattr(discovery, "detect_probes", lambda: [probe])
    [check] = doctor.check_probe_ports()
    assert not check.ok and "0671FF" in check.what and "dialout" in check.fix


def test_micropy_home_unset_or_wrong_is_explained_but_optional(tmp_path, monkeypatch):
    monkeypatch.delenv("MICROPY_HOME", raising=False)
    check = doctor.check_micropython()
    assert not check.ok and not check.required and check.found == "MICROPY_HOME is not set" and "make micropython" in check.fix
    monkeypatch.setenv("MICROPY_HOME", str(tmp_path))
    check = doctor.check_micropython()
    assert not check.ok and not check.required and "no py/dynruntime.mk" in check.found


def test_mpremote_is_found_here_and_missing_says_how_to_install(monkeypatch):
    check = doctor.check_mpremote()
    assert check.ok and not check.required and check.found == "mpremote 1.29.0"
    monkeypatch.setitem(sys.modules, "mpremote", None)
    check = doctor.check_mpremote()
    assert not check.ok and not check.required and "make venv" in check.fix

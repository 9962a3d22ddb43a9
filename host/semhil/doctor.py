"""`semhil doctor`: what this computer has for each kind of board, and what to install or change."""
from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import SemhilError

APT = "apt-get install"


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    found: str           # what was found (a version, a path) or what is wrong
    fix: str = ""        # what to install or change when not ok
    required: bool = True  # needed for `make test` (the native and QEMU boards); else only for some boards or backends


def _run(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"failed: {e}"
    return (done.stdout + done.stderr).strip()


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _tool(name: str, what: str, fix: str, required: bool = True, version_flag: str = "--version") -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(what, False, f"{name} not found", fix, required)
    return Check(what, True, f"{path}: {_first_line(_run([path, version_flag]))}", required=required)


def check_newlib() -> Check:
    what = "newlib-nano for arm-none-eabi"
    if shutil.which("arm-none-eabi-gcc") is None:
        return Check(what, False, "no arm-none-eabi-gcc to ask", f"{APT} libnewlib-arm-none-eabi")
    specs = _run(["arm-none-eabi-gcc", "-print-file-name=nano.specs"])
    ok = os.path.isabs(specs) and Path(specs).is_file()
    return Check(what, ok, str(Path(specs).resolve()) if ok else "nano.specs not found", f"{APT} libnewlib-arm-none-eabi")


def check_qemu_machines(machines: tuple[str, ...] = ("netduinoplus2", "mps2-an500")) -> Check:
    what = "QEMU machines of the emulated boards"
    if shutil.which("qemu-system-arm") is None:
        return Check(what, False, "no qemu-system-arm to ask", f"{APT} qemu-system-arm")
    listed = _run(["qemu-system-arm", "-M", "help"])
    missing = [m for m in machines if not re.search(rf"^{re.escape(m)}\s", listed, re.M)]
    return Check(what, not missing, "missing: " + ", ".join(missing) if missing else ", ".join(machines),
                 "a newer qemu-system-arm (7.0 or later has both)")


def _check_clone(what: str, variable: str, home_of, hint: str, pin: str, checkout: str) -> Check:
    """A third-party clone named by an environment variable: set, the right tree, at the pinned commit."""
    if not os.environ.get(variable):
        return Check(what, False, f"{variable} is not set", hint, required=False)
    try:
        home = home_of()
    except SemhilError as e:
        return Check(what, False, str(e), hint, required=False)
    if (home / ".git").exists():
        commit = _run(["git", "-C", str(home), "rev-parse", "HEAD"])
        if not commit.startswith(pin):
            return Check(what, False, f"{home} is at {commit[:12]}, semhil is tested with {pin[:12]} ({checkout})",
                         f"git -C {home} checkout {checkout}", required=False)
    return Check(what, True, str(home), required=False)


def check_nnom() -> Check:
    from .build import NNOM_HINT, NNOM_PIN, nnom_home
    return _check_clone("NNoM (the nnom backend)", "NNOM_HOME", nnom_home, NNOM_HINT, NNOM_PIN, NNOM_PIN[:12])


def check_cmsis() -> Check:
    from .build import CMSIS_HINT, CMSIS_PIN, cmsis_home
    return _check_clone("CMSIS-NN (the cmsis-nn backend, a peer for `semhil bench kernels`)", "CMSIS_HOME", cmsis_home,
                        CMSIS_HINT, CMSIS_PIN, "5.9.0")


def check_micropython() -> Check:
    from .micropython.home import MICROPY_HINT, MICROPY_PIN, micropy_home
    return _check_clone("MicroPython (micropython-* boards)", "MICROPY_HOME", micropy_home, MICROPY_HINT, MICROPY_PIN,
                        MICROPY_PIN[:12])


def check_mpremote() -> Check:
    from .micropython.home import mpremote_command
    what, fix = "mpremote (MicroPython boards)", "`make venv` or `.venv/bin/pip install -e .`"
    try:
        mpremote_command()
    except SemhilError as e:
        return Check(what, False, str(e), fix, required=False)
    return Check(what, True, f"mpremote {importlib.metadata.version('mpremote')}", required=False)


def check_browser() -> Check:
    name = next((n for n in ("chromium", "chromium-browser") if shutil.which(n)), "chromium")
    return _tool(name, "Chromium (the tests render `semhil report`'s page with it)", f"{APT} chromium  (or `make browser` as root)",
                 required=False)


def check_pty() -> Check:
    ok = os.access("/dev/ptmx", os.R_OK | os.W_OK)
    return Check("pseudo-terminals (native and QEMU boards' UARTs)", ok, "/dev/ptmx" + ("" if ok else " not readable and writable"),
                 "run where /dev/ptmx is usable (in a container: mount devpts)")


def check_probe_ports() -> list[Check]:
    """Every attached ST-LINK's serial port must be readable and writable by this user."""
    from .discovery import detect_probes
    checks = []
    for probe in detect_probes():
        ok = os.access(probe.port, os.R_OK | os.W_OK)
        checks.append(Check(f"serial port of ST-LINK {probe.serial_number}", ok,
                            probe.port + ("" if ok else ": no read/write permission"),
                            "sudo usermod -aG dialout $USER, then log in again (or a udev rule for the ST-LINK)", required=False))
    if not checks:
        checks.append(Check("attached ST-LINK probes", True, "none (needed only for silicon boards)", required=False))
    return checks


def check_labgrid() -> list[Check]:
    version = importlib.metadata.version("labgrid")
    ser2net = shutil.which("ser2net") or ("/usr/sbin/ser2net" if os.path.isfile("/usr/sbin/ser2net") else None)
    return [Check("labgrid (boards in labgrid places)", True, f"labgrid {version}", required=False),
            Check("ser2net (a labgrid exporter serves serial ports with it)", ser2net is not None, ser2net or "ser2net not found",
                  f"{APT} ser2net  (or `make toolchain` as root)")]


def check_places(places: list) -> list[Check]:
    """For each configured place (places.PlaceChoice): the coordinator answers and knows the place."""
    from .places.coordinator import Coordinator, PlaceError
    checks = []
    for choice in places:
        what = f"labgrid place {choice.name}"
        try:
            with Coordinator(choice.coordinator) as coordinator:
                place = coordinator.place(choice.name)
                held = f"held by {place.acquired}" if place.acquired else "free"
                checks.append(Check(what, True, f"at {coordinator.address}: board={place.tags.get('board', '?')}, {held}"))
        except PlaceError as e:
            checks.append(Check(what, False, str(e), "start the coordinator, or fix --coordinator / LG_COORDINATOR / the place's name"))
    return checks


def run_checks(places: list | None = None) -> list[Check]:
    """places: the labgrid places configured (--place, a hardware map's labgrid_place entries)."""
    return [
        _tool("gcc", "host C compiler (native board)", f"{APT} gcc"),
        _tool("arm-none-eabi-gcc", "Arm cross-compiler (MCU boards)", f"{APT} gcc-arm-none-eabi  (or `make toolchain` as root)"),
        check_newlib(),
        _tool("qemu-system-arm", "QEMU (qemu-stm32f405, qemu-cortex-m7)", f"{APT} qemu-system-arm  (or `make toolchain` as root)"),
        check_qemu_machines(),
        check_pty(),
        check_nnom(),
        check_cmsis(),
        check_micropython(),
        check_mpremote(),
        _tool("openocd", "openocd (flashing silicon boards)", f"{APT} openocd  (0.12 or newer)", required=False),
        _tool("pyocd", "pyocd (flashing silicon boards)", "pip install pyocd", required=False),
        _tool("st-flash", "st-flash (flashing silicon boards)", f"{APT} stlink-tools", required=False),
        check_browser(),
        *check_probe_ports(),
        *check_labgrid(),
        *check_places(places or []),
    ]

"""The MicroPython checkout (MICROPY_HOME), its unix and QEMU ports built out of tree into a cache, and mpremote."""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from ..errors import SemhilError

MICROPY_PIN = "1c3c201149f37fe8d81246191b3127bb198d6306"  # the MicroPython commit semhil is tested with (`make micropython` clones it)
MICROPY_HINT = (f"clone MicroPython at commit {MICROPY_PIN[:12]} (`make micropython` does it) "
                "and set MICROPY_HOME to that folder")
# What semhil uses of the tree: natmod builds, the two ports, and the version header (part of the build cache's key)
MICROPY_FILES = ["py/dynruntime.mk", "tools/mpy_ld.py", "ports/unix/Makefile", "ports/qemu/Makefile", "py/mpconfig.h"]
PORT_FLAGS = {
    "unix": ["MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0", "FROZEN_MANIFEST=", "PROG=micropython"],
    "qemu": ["FROZEN_MANIFEST="],
}
PORT_OUTPUT = {"unix": "micropython", "qemu": "firmware.elf"}
PORT_COMPILER = {"unix": ("gcc", "apt-get install gcc"), "qemu": ("arm-none-eabi-gcc", "apt-get install gcc-arm-none-eabi")}


def micropy_home() -> Path:
    """The MicroPython tree named by MICROPY_HOME, or an error saying how to get one."""
    value = os.environ.get("MICROPY_HOME")
    if not value:
        raise SemhilError(f"MicroPython boards need MicroPython (to build its unix and QEMU ports and native .mpy modules): "
                          f"{MICROPY_HINT}")
    home = Path(value).expanduser()
    missing = next((f for f in MICROPY_FILES if not (home / f).is_file()), None)
    if missing:
        raise SemhilError(f"MICROPY_HOME={home} is not a MicroPython tree (no {missing}): {MICROPY_HINT}")
    return home


def _tree_key(home: Path) -> str:
    """Short hash of where the tree is and which version it holds: its git HEAD, else its version header's mtime."""
    identity = ""
    if (home / ".git").exists():
        done = subprocess.run(["git", "-C", str(home), "rev-parse", "HEAD"], capture_output=True, text=True)
        identity = done.stdout.strip() if done.returncode == 0 else ""
    identity = identity or str((home / "py" / "mpconfig.h").stat().st_mtime_ns)
    return hashlib.sha1(f"{os.path.realpath(home)}\n{identity}".encode()).hexdigest()[:12]


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "semhil" / "micropython-builds"


@contextmanager
def _showing(description: str, progress: Progress | None):
    """A line while the build runs: a task of the caller's progress, else a status line on stderr."""
    if progress is None:
        console = Console(stderr=True)
        if not console.is_terminal:
            console.print(description)  # a status line is only drawn on a terminal
        with console.status(description):
            yield
        return
    task = progress.add_task(description, total=None)
    try:
        yield
    finally:
        progress.remove_task(task)


def _built(output: Path, stamp: Path, command: str) -> bool:
    return output.is_file() and stamp.is_file() and stamp.read_text() == command


def build_micropython(port: str, board: str | None = None, progress: Progress | None = None) -> Path:
    """MicroPython's `unix` port (the path of its `micropython` executable) or its `qemu` port for a board such as
    MPS2_AN500 (the path of its firmware.elf), built once per MicroPython tree into semhil's cache, never inside the tree."""
    if port not in PORT_FLAGS or (port == "qemu") != (board is not None):
        raise SemhilError(f"MicroPython port {port!r} board {board!r}: give port 'unix' (no board) or 'qemu' with a board")
    home = micropy_home()
    if board is not None and not (home / "ports" / port / "boards" / board).is_dir():
        boards = sorted(p.name for p in (home / "ports" / port / "boards").iterdir() if p.is_dir())
        raise SemhilError(f"MicroPython's {port} port has no board {board} (it has {', '.join(boards)})")
    for tool, fix in [("make", "apt-get install make"), PORT_COMPILER[port]]:
        if shutil.which(tool) is None:
            raise SemhilError(f"{tool} not found (needed to build MicroPython's {port} port): {fix}")
    folder = _cache_dir() / _tree_key(home) / (port if board is None else f"{port}-{board}")
    build, stamp, log = folder / "build", folder / "built-by.txt", folder / "build.log"
    output = build / PORT_OUTPUT[port]
    cmd = ["make", "-C", str(home / "ports" / port), *([f"BOARD={board}"] if board else []), *PORT_FLAGS[port],
           f"BUILD={build}", "-j2"]
    command = " ".join(cmd)
    if _built(output, stamp, command):
        return output
    folder.mkdir(parents=True, exist_ok=True)
    what = f"MicroPython's {port} port" + (f" for {board}" if board else "")
    with (folder / "lock").open("a") as lock, _showing(f"building {what} (about a minute, once)", progress):
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers: one builds, the others wait for it
        if _built(output, stamp, command):
            return output
        stamp.unlink(missing_ok=True)
        shutil.rmtree(build, ignore_errors=True)  # an earlier, different or failed build
        # An outer make's flags and variables (e.g. `make test`) must not reach MicroPython's make.
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
        with log.open("w") as out:
            out.write(command + "\n")
            out.flush()
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        if done.returncode != 0 or not output.is_file():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
            raise SemhilError(f"building {what} failed; see {log}. Its last lines:\n{tail}")
        stamp.write_text(command)
    return output


def mpremote_command() -> list[str]:
    """The command that runs the pinned mpremote with this Python."""
    try:
        import mpremote  # noqa: F401
    except ImportError:
        raise SemhilError("mpremote is missing: install semhil's pinned packages (`make venv` or `.venv/bin/pip install -e .`)") from None
    return [sys.executable, "-m", "mpremote"]

"""Build the firmware of a bundle for a board: generated model + kernels + core + the board's port."""
from __future__ import annotations

import os
import shutil
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from .boards import Board
from .backends import generate_model
from .backends.nnom import SIZING_ARENA_BYTES
from .errors import SemhilError
from .paths import DEVICE_DIR

COMMON_FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fno-math-errno"]
CPU_FLAGS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"],
}
MCU_LINK_FLAGS = ["-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections"]
MEMORY_ORIGIN = {"stm32f4": ("0x08000000", "0x20000000")}
STACK_SECTIONS = {"._stack", ".stack"}
INSTALL_HINT = "install it with `make toolchain` (as root) or `apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi`"


@dataclass(frozen=True)
class MemoryReport:
    flash_bytes: int       # text + rodata + data (+ vectors)
    ram_static_bytes: int  # data + bss, stack region excluded
    stack_region_bytes: int


@dataclass(frozen=True)
class Firmware:
    path: Path
    board: Board
    bundle_hash: str
    memory: MemoryReport


def memory_report(elf_path: Path) -> MemoryReport:
    flash = ram = stack = 0
    with elf_path.open("rb") as f:
        for section in ELFFile(f).iter_sections():
            flags, size = section["sh_flags"], section["sh_size"]
            if not flags & SH_FLAGS.SHF_ALLOC or section.name.startswith(".tbss") or section.name.startswith(".tdata"):
                continue
            if section.name in STACK_SECTIONS:
                stack += size
                continue
            if section["sh_type"] != "SHT_NOBITS":
                flash += size
            if flags & SH_FLAGS.SHF_WRITE:
                ram += size
    return MemoryReport(flash, ram, stack)


def compiler_for(board: Board) -> str:
    cc = "gcc" if board.family == "native" else "arm-none-eabi-gcc"
    if shutil.which(cc) is None:
        raise SemhilError(f"{cc} not found (needed to build for board {board.name}): {INSTALL_HINT if cc != 'gcc' else 'apt-get install gcc'}")
    return cc


def _linker_script(board: Board, out_dir: Path) -> Path:
    flash_origin, ram_origin = MEMORY_ORIGIN[board.family]
    template = string.Template((DEVICE_DIR / "ports" / board.family / "linker.ld.in").read_text())
    script = out_dir / "linker.ld"
    script.write_text(template.substitute(flash_origin=flash_origin, flash_bytes=board.flash_bytes, ram_origin=ram_origin,
                                          ram_bytes=board.ram_bytes, stack_bytes=board.stack_bytes))
    return script


NNOM_PIN = "4d1d8fc05999e239ca2f3c482fc028362a52e3af"  # the NNoM commit semhil is tested with (`make nnom` clones it)
NNOM_FLAGS = ["-std=gnu99", "-O2", "-w", "-ffp-contract=off", "-fno-math-errno"]
NNOM_HINT = f"clone NNoM at commit {NNOM_PIN[:12]} (`make nnom` does it) and set NNOM_HOME to that folder"


def nnom_home() -> Path:
    """The NNoM checkout named by NNOM_HOME, or an error saying how to get one."""
    value = os.environ.get("NNOM_HOME")
    if not value:
        raise SemhilError(f"the nnom backend needs NNoM: {NNOM_HINT}")
    home = Path(value).expanduser()
    if not (home / "inc" / "nnom.h").is_file() or not (home / "src" / "core" / "nnom.c").is_file():
        raise SemhilError(f"NNOM_HOME={home} is not an NNoM checkout (no inc/nnom.h or src/core/nnom.c): {NNOM_HINT}")
    return home


def _nnom_sources(home: Path) -> list[Path]:
    return sorted(p for d in ("core", "layers", "backends") for p in (home / "src" / d).glob("*.c"))


def _nnom_includes(home: Path) -> list[str]:
    """Our nnom_port.h first (it replaces NNoM's port/), NNoM's headers as system headers (their warnings are not ours)."""
    return [f"-I{DEVICE_DIR / 'nnom'}", f"-isystem{home / 'inc'}", f"-isystem{home / 'inc' / 'layers'}"]


def _compile(cmd: list[str], log: Path, what: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    log.with_suffix(".cmd").write_text(" ".join(cmd) + "\n")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=log.parent)
    if done.returncode != 0:
        log.write_text(done.stdout + done.stderr)
        overflow = "will not fit" in done.stderr or "overflowed" in done.stderr
        reason = "the model does not fit the board's memory" if overflow else "the compiler failed"
        raise SemhilError(f"{what} failed: {reason}; see {log}")


def _nnom_objects(cc: str, flags: list[str], home: Path, obj_dir: Path) -> list[Path]:
    """NNoM compiled into obj_dir (with its own warnings off); reused while home, compiler and flags stay the same."""
    sources = _nnom_sources(home)
    objects = [obj_dir / (src.stem + ".o") for src in sources]
    cmd = [cc, *NNOM_FLAGS, *flags, *_nnom_includes(home), "-c", *map(str, sources)]
    stamp, built_by = obj_dir / "built-by.txt", " ".join(cmd)
    if not (all(o.is_file() for o in objects) and stamp.is_file() and stamp.read_text() == built_by):
        stamp.unlink(missing_ok=True)
        _compile(cmd, obj_dir / "build.log", f"compiling NNoM from {home}")
        stamp.write_text(built_by)
    return objects


def nnom_arena_bytes(graph: dict, bundle_hash: str, home: Path, work_dir: Path) -> int:
    """The static memory NNoM takes for this graph, measured by running its model_compile on this
    computer (64-bit pointers make that an upper bound for a 32-bit board)."""
    work_dir = work_dir.resolve()  # the compiler runs in a folder of its own
    model_dir = generate_model(graph, bundle_hash, work_dir / "model", "nnom")
    objects = _nnom_objects("gcc", [], home, work_dir / "nnom-host")
    sources = [model_dir / "model.c", DEVICE_DIR / "kernels" / "kernels.c", DEVICE_DIR / "nnom" / "nnom_port.c",
               DEVICE_DIR / "nnom" / "nnom_sizer.c"]
    exe = work_dir / "nnom-sizer"
    includes = [f"-I{d}" for d in (model_dir, DEVICE_DIR / "kernels", DEVICE_DIR / "core")] + _nnom_includes(home)
    _compile(["gcc", *COMMON_FLAGS, *includes, *map(str, sources), *map(str, objects), "-o", str(exe), "-lm"],
             work_dir / "sizer.log", "building the NNoM memory sizer")
    done = subprocess.run([str(exe)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SemhilError(f"NNoM could not compile this model even with {SIZING_ARENA_BYTES} bytes: {done.stderr.strip()}")
    return int(done.stdout) + 8  # NNoM's allocator wants a byte to spare (size + used < buffer)


def generate_sources(graph: dict, bundle_hash: str, backend: str, model_dir: Path, work_dir: Path) -> Path:
    """The C of `backend` for `graph` in model_dir; for nnom, with NNoM's static buffer sized by a run
    on this computer (in work_dir). Returns model_dir."""
    if backend != "nnom":
        return generate_model(graph, bundle_hash, model_dir, backend)
    arena = nnom_arena_bytes(graph, bundle_hash, nnom_home(), work_dir)
    return generate_model(graph, bundle_hash, model_dir, backend, arena_bytes=arena)


def build_firmware(bundle, board: Board, backend: str = "standalone") -> Firmware:
    """Generate the model's C under <bundle>/device/<backend>/ and build <bundle>/build/<board>-<backend>/firmware.elf."""
    if "unsupported" in bundle.graph:
        raise SemhilError(f"bundle {bundle.path} has no device graph for a board: {bundle.graph['unsupported']}")
    cc = compiler_for(board)
    root = bundle.path.resolve()  # the compiler runs in a folder of its own
    out_dir = root / "build" / f"{board.name}-{backend}"
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = root / "device" / backend
    port = DEVICE_DIR / "ports" / board.family
    dirs = [DEVICE_DIR / "core", DEVICE_DIR / "kernels", port]
    target_flags = [] if board.family == "native" else CPU_FLAGS[board.core] + ["-ffunction-sections", "-fdata-sections"]
    generate_sources(bundle.graph, bundle.hash, backend, model_dir, out_dir / "sizer")
    includes, objects = [], []
    if backend == "nnom":
        home = nnom_home()
        dirs.append(DEVICE_DIR / "nnom")
        includes = _nnom_includes(home)
        log_flags = ["-DSEMHIL_NNOM_LOG_STDERR"] if board.family == "native" else []  # NNoM's logs in the board's output
        objects = _nnom_objects(cc, target_flags + log_flags, home, out_dir / "nnom")
    sources = sorted(str(p) for d in [*dirs, model_dir] for p in d.glob("*.c") if p.name != "nnom_sizer.c")
    elf = out_dir / "firmware.elf"
    cmd = [cc, *COMMON_FLAGS, *target_flags, *[f"-I{d}" for d in [*dirs, model_dir]], *includes, f'-DBOARD_NAME="{board.name}"']
    if board.family == "native":
        cmd += ["-D_GNU_SOURCE", *sources, *map(str, objects), "-o", str(elf), "-lm"]
    else:
        cmd += [*MCU_LINK_FLAGS, f"-Wl,-Map={out_dir / 'firmware.map'}", "-T", str(_linker_script(board, out_dir)),
                *sources, *map(str, objects), "-o", str(elf), "-lm"]
    _compile(cmd, out_dir / "build.log", f"build for {board.name} ({backend} backend)")
    return Firmware(elf, board, bundle.hash, memory_report(elf))

"""Build the firmware of a bundle for a board: generated model + kernels + core + the board's port."""
from __future__ import annotations

import shutil
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from .boards import Board
from .codegen import generate_model
from .errors import SemhilError
from .paths import DEVICE_DIR

COMMON_FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fno-math-errno"]
CPU_FLAGS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"],
}
MCU_LINK_FLAGS = ["-ffunction-sections", "-fdata-sections", "-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections"]
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


def build_firmware(bundle, board: Board, backend: str = "standalone") -> Firmware:
    """Generate the model's C under <bundle>/device/<backend>/ and build <bundle>/build/<board>/firmware.elf."""
    if backend != "standalone":
        raise SemhilError(f"backend {backend!r} is not available yet; use --backend standalone")
    if "unsupported" in bundle.graph:
        raise SemhilError(f"bundle {bundle.path} has no device graph for a board: {bundle.graph['unsupported']}")
    cc = compiler_for(board)
    model_dir = generate_model(bundle.graph, bundle.hash, bundle.path / "device" / backend)
    out_dir = bundle.path / "build" / board.name
    out_dir.mkdir(parents=True, exist_ok=True)
    port = DEVICE_DIR / "ports" / board.family
    dirs = [DEVICE_DIR / "core", DEVICE_DIR / "kernels", port, model_dir]
    sources = sorted(str(p) for d in dirs for p in d.glob("*.c"))
    elf = out_dir / "firmware.elf"
    cmd = [cc, *COMMON_FLAGS, *[f"-I{d}" for d in dirs], f'-DBOARD_NAME="{board.name}"']
    if board.family == "native":
        cmd += ["-D_GNU_SOURCE", *sources, "-o", str(elf), "-lm"]
    else:
        cmd += [*CPU_FLAGS[board.core], *MCU_LINK_FLAGS, f"-Wl,-Map={out_dir / 'firmware.map'}",
                "-T", str(_linker_script(board, out_dir)), *sources, "-o", str(elf), "-lm"]
    (out_dir / "build-command.txt").write_text(" ".join(cmd) + "\n")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        log = out_dir / "build.log"
        log.write_text(done.stdout + done.stderr)
        overflow = "will not fit" in done.stderr or "overflowed" in done.stderr
        reason = "the model does not fit the board's memory" if overflow else "the compiler failed"
        raise SemhilError(f"build for {board.name} failed: {reason}; see {log}")
    return Firmware(elf, board, bundle.hash, memory_report(elf))

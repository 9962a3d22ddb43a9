"""Build the firmware of a bundle for a board: generated model + kernels + core + the board's port."""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import string
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from codec_train.simulate import check_graph_format

from .boards import PIN, Board
from .backends import SYMBOLS_FILE, generate_model
from .clocks import clock_plan
from .backends.nnom import SIZING_ARENA_BYTES
from .errors import SemhilError
from .firmware_check import ModelMissing, check_model_linked
from .paths import DEVICE_DIR
from .stack_usage import StackEstimate, estimate_stack

COMMON_FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fno-math-errno"]
CPU_FLAGS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"],
}
# --emit-relocs keeps the relocations in the ELF: the stack estimate finds there which functions are
# called through pointers (stack_usage.py); nothing loaded onto the board changes.
MCU_LINK_FLAGS = ["-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections", "-Wl,--emit-relocs"]
# GCC's frame sizes (.su) and call graph (.ci), written next to the ELF as <name>.elf-<source>.su/.ci
STACK_FLAGS = ["-fstack-usage", "-fcallgraph-info=su"]
MEASURING_BYTES = 0x0F000000  # memory of the link that measures a firmware too large for its board
STACK_SECTIONS = {"._stack", ".stack"}
INSTALL_HINT = "install it with `make toolchain` (as root) or `apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi`"


@dataclass(frozen=True)
class MemoryReport:
    flash_bytes: int       # text + rodata + data (+ vectors)
    ram_static_bytes: int  # data + bss, stack region excluded
    stack_region_bytes: int               # the stack region linked at the top of RAM
    stack_estimate_bytes: int | None = None  # worst case from GCC's call graph; None: not known (native) or unbounded
    peak_ram_bytes: int | None = None     # ram_static_bytes + stack_estimate_bytes
    stack_path: tuple[str, ...] = ()      # the deepest call chain of the estimate
    notes: tuple[str, ...] = ()           # what the build decided or could not work out (stack region, unbounded stack)

    def with_stack(self, stack: StackEstimate, notes=()) -> "MemoryReport":
        peak = None if stack.bytes is None else self.ram_static_bytes + stack.bytes
        return dataclasses.replace(self, stack_estimate_bytes=stack.bytes, peak_ram_bytes=peak, stack_path=stack.path,
                                   notes=(*stack.notes, *notes))


class ModelTooLarge(SemhilError):
    """The firmware does not fit the board's flash or RAM; ram_bytes: the RAM it needs, when RAM is what is short."""

    def __init__(self, message: str, ram_bytes: int | None = None):
        super().__init__(message)
        self.ram_bytes = ram_bytes


@dataclass(frozen=True)
class Firmware:
    path: Path
    board: Board
    bundle_hash: str
    memory: MemoryReport
    recursion_bounds: tuple[tuple[str, int], ...] = ()  # what the stack estimate was told (recursion_bounds)


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


def linker_script(board: Board, path: Path, flash_bytes: int, ram_bytes: int, stack_bytes: int | None = None) -> Path:
    flash_origin, ram_origin = board.memory_origins
    template = string.Template((DEVICE_DIR / "ports" / "cortex-m" / "linker.ld.in").read_text())
    path.write_text(template.substitute(flash_origin=hex(flash_origin), flash_bytes=flash_bytes, ram_origin=hex(ram_origin),
                                        ram_bytes=ram_bytes, stack_bytes=board.stack_bytes if stack_bytes is None else stack_bytes))
    return path


def static_ram_extent(elf_path: Path, ram_origin: int) -> int:
    """Bytes from the start of RAM to the end of .bss (data + bss with their alignment): what the
    stack region must leave below it."""
    with elf_path.open("rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        ebss = symtab.get_symbol_by_name("_ebss") if symtab else None
    if not ebss:
        raise SemhilError(f"{elf_path} has no _ebss symbol: not linked with semhil's linker script")
    return ebss[0]["st_value"] - ram_origin


CHUNK_BYTES_RANGE = (256, 4096)  # an image chunk's pixels: 1/64 of the board's RAM within this range
NATIVE_CHUNK_BYTES = 4096


def chunk_bytes(board: Board) -> int:
    """How many pixel bytes one chunk of an image may carry on this board: more RAM, fewer round trips."""
    if not board.is_mcu:
        return NATIVE_CHUNK_BYTES
    low, high = CHUNK_BYTES_RANGE
    return max(low, min(high, board.ram_bytes // 64))


def board_config(board: Board) -> str:
    """board_config.h: the board file and its clock plan as the BOARD_* macros the ports read."""
    defines = {"BOARD_NAME": f'"{board.name}"', "BOARD_CORE_CLOCK_HZ": f"{board.clock_hz}u",
               "BOARD_CHUNK_BYTES": f"{chunk_bytes(board)}u /* pixels one chunk of an image may carry, whole rows, at least one */",
               "BOARD_CORE_M7": int(board.core == "cortex-m7"), "BOARD_TIMER_DWT": int(board.latency_source == "cycles"),
               "BOARD_UART_BAUD": f"{board.uart_baud}u"}
    if board.uart_instance[-1].isdigit():
        defines["BOARD_UART_INSTANCE"] = int(board.uart_instance[-1])
    for end in ("tx", "rx"):
        pin = getattr(board, f"uart_{end}")
        if pin:
            port, number = PIN.match(pin).groups()
            defines[f"BOARD_UART_{end.upper()}_PORT"] = f"{ord(port) - ord('A')} /* {pin} */"
            defines[f"BOARD_UART_{end.upper()}_PIN"] = int(number)
    defines.update(clock_plan(board).defines())
    lines = [f"#define {name} {value}" for name, value in defines.items()]
    return (f"/* Generated by semhil.build from {board.path or board.name}; do not edit. */\n#ifndef BOARD_CONFIG_H\n"
            f"#define BOARD_CONFIG_H\n" + "\n".join(lines) + "\n#endif\n")


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


def _refuse(board: Board, problems: list[str], out_dir: Path, ram_bytes: int | None = None) -> None:
    (out_dir / "firmware.elf").unlink(missing_ok=True)  # never leave a firmware that does not fit
    raise ModelTooLarge(f"the model does not fit {board.name}: " + "; ".join(problems or ["the linker says it overflows"])
                        + f"; choose a board with more memory (semhil boards) or a smaller model (see {out_dir / 'build.log'})",
                        ram_bytes)


def stack_region(board: Board, flash_bytes: int, static_bytes: int, stack: StackEstimate, out_dir: Path) -> tuple[int, str]:
    """The stack region to link for a firmware of flash_bytes and static_bytes (RAM up to the end of
    .bss) whose worst-case stack is stack.bytes, and a note saying why when it is not the board
    file's stack_bytes; raises ModelTooLarge when the firmware cannot fit.

    The board file's stack_bytes when static + stack_bytes fits, grown to the estimate when the
    estimate exceeds it; when only static + estimate fits, what remains of RAM above static (never
    less than the estimate). With no estimate (unbounded stack), stack_bytes or nothing."""
    problems = []
    if flash_bytes > board.flash_bytes:
        problems.append(f"needs {_kb(flash_bytes)} flash, board has {_kb(board.flash_bytes)} "
                        f"({flash_bytes - board.flash_bytes:,} B short)")
    free = (board.ram_bytes - static_bytes) // 8 * 8
    ram_needed = static_bytes + (board.stack_bytes if stack.bytes is None else stack.bytes)
    if stack.bytes is None:
        if free < board.stack_bytes:
            problems.append(f"needs {_kb(static_bytes + board.stack_bytes)} RAM = {_kb(static_bytes)} static + "
                            f"{_kb(board.stack_bytes)} stack (the board file's stack_bytes: {'; '.join(stack.notes)}), "
                            f"board has {_kb(board.ram_bytes)} ({static_bytes + board.stack_bytes - board.ram_bytes:,} B short)")
        region, note = board.stack_bytes, ""
    else:
        needed = _round8(stack.bytes)
        if free < needed:
            problems.append(f"needs {_kb(static_bytes + stack.bytes)} RAM = {_kb(static_bytes)} static + "
                            f"{_kb(stack.bytes)} stack (the worst case of GCC's call graph), board has {_kb(board.ram_bytes)} "
                            f"({static_bytes + needed - board.ram_bytes:,} B short)")
        if needed > board.stack_bytes:
            region, note = needed, (f"stack region grown from the board file's {_kb(board.stack_bytes)} to the "
                                    f"{_kb(needed)} the firmware may need")
        elif free < board.stack_bytes:
            region, note = free, (f"stack region shrunk from the board file's {_kb(board.stack_bytes)} to the "
                                  f"{_kb(free)} left above static RAM (the firmware needs at most {_kb(stack.bytes)})")
        else:
            region, note = board.stack_bytes, ""
    if problems:
        _refuse(board, problems, out_dir, ram_needed if ram_needed > board.ram_bytes else None)
    return region, note


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
    if done.returncode == 0:
        log.unlink(missing_ok=True)  # an earlier failure's log, stale now
    else:
        log.write_text(done.stdout + done.stderr)
        if "will not fit" in done.stderr or "overflowed" in done.stderr:
            raise ModelTooLarge(f"{what} failed: the model does not fit the board's memory; see {log}")
        raise SemhilError(f"{what} failed: the compiler failed; see {log}")


def _nnom_objects(cc: str, flags: list[str], home: Path, obj_dir: Path) -> list[Path]:
    """NNoM compiled into obj_dir (with its own warnings off); reused while home, compiler and flags stay the same.
    With STACK_FLAGS among flags, GCC's .su and .ci files of each source land in obj_dir too."""
    return _objects([cc, *NNOM_FLAGS, *flags, *_nnom_includes(home)], _nnom_sources(home), obj_dir, f"compiling NNoM from {home}")


def _objects(compiler: list[str], sources: list[Path], obj_dir: Path, what: str) -> list[Path]:
    """A third-party library's sources compiled into obj_dir, never inside its own tree; reused while the
    command stays the same. With STACK_FLAGS among the flags, GCC's .su and .ci files land in obj_dir too."""
    objects = [obj_dir / (src.stem + ".o") for src in sources]
    outputs = objects + ([obj_dir / (src.stem + ".ci") for src in sources] if "-fcallgraph-info=su" in compiler else [])
    cmd = [*compiler, "-c", *map(str, sources)]
    stamp, built_by = obj_dir / "built-by.txt", " ".join(cmd)
    if not (all(o.is_file() for o in outputs) and stamp.is_file() and stamp.read_text() == built_by):
        stamp.unlink(missing_ok=True)
        _compile(cmd, obj_dir / "build.log", what)
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


CMSIS_TAG, CMSIS_PIN = "5.9.0", "2b7495b8535b"  # the CMSIS_5 release the cmsis-nn backend is tested with (`make cmsis` clones it)
CMSIS_HINT = f"clone CMSIS_5 at tag {CMSIS_TAG} (commit {CMSIS_PIN}; `make cmsis` does it) and set CMSIS_HOME to that folder"
CMSIS_FLAGS = ["-std=c99", "-O2", "-w", "-fno-math-errno"]
# CMSIS-NN's s8 convolution as TensorFlow Lite Micro calls it, with the support functions it calls (CMSIS/NN/Source/)
CMSIS_SOURCES = ["ConvolutionFunctions/arm_convolve_wrapper_s8.c", "ConvolutionFunctions/arm_convolve_s8.c",
                 "ConvolutionFunctions/arm_convolve_1x1_s8_fast.c", "ConvolutionFunctions/arm_convolve_1_x_n_s8.c",
                 "ConvolutionFunctions/arm_nn_mat_mult_kernel_s8_s16.c", "ConvolutionFunctions/arm_nn_mat_mult_s8.c",
                 "NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c", "NNSupportFunctions/arm_nn_mat_mul_core_1x_s8.c",
                 "NNSupportFunctions/arm_nn_mat_mul_core_4x_s8.c", "NNSupportFunctions/arm_q7_to_q15_with_offset.c"]


def cmsis_home() -> Path:
    """The CMSIS_5 tree named by CMSIS_HOME, or an error saying how to get one."""
    value = os.environ.get("CMSIS_HOME")
    if not value:
        raise SemhilError(f"the cmsis-nn backend needs CMSIS-NN: {CMSIS_HINT}")
    home = Path(value).expanduser()
    missing = [s for s in CMSIS_SOURCES if not (home / "CMSIS" / "NN" / "Source" / s).is_file()]
    if missing or not (home / "CMSIS" / "NN" / "Include" / "arm_nnfunctions.h").is_file():
        raise SemhilError(f"CMSIS_HOME={home} is not a CMSIS_5 tree (no CMSIS/NN/Include/arm_nnfunctions.h or "
                          f"CMSIS/NN/Source/{(missing or CMSIS_SOURCES)[0]}): {CMSIS_HINT}")
    return home


def _cmsis_includes(home: Path) -> list[str]:
    """CMSIS's headers as system headers (their warnings are not ours); ARM_MATH_DSP follows __ARM_FEATURE_DSP."""
    return [f"-isystem{home / 'CMSIS' / d / 'Include'}" for d in ("NN", "DSP", "Core")]


def _cmsis_objects(cc: str, flags: list[str], home: Path, obj_dir: Path) -> list[Path]:
    """CMSIS-NN's sources compiled into obj_dir, out of CMSIS_HOME; reused while home, compiler and flags stay the same."""
    sources = [home / "CMSIS" / "NN" / "Source" / s for s in CMSIS_SOURCES]
    return _objects([cc, *CMSIS_FLAGS, *flags, *_cmsis_includes(home)], sources, obj_dir, f"compiling CMSIS-NN from {home}")


def generate_sources(graph: dict, bundle_hash: str, backend: str, model_dir: Path, work_dir: Path) -> Path:
    """The C of `backend` for `graph` in model_dir; for nnom, with NNoM's static buffer sized by a run
    on this computer (in work_dir). Returns model_dir."""
    check_graph_format(graph, f"bundle {bundle_hash}")
    if backend != "nnom":
        return generate_model(graph, bundle_hash, model_dir, backend)
    arena = nnom_arena_bytes(graph, bundle_hash, nnom_home(), work_dir)
    return generate_model(graph, bundle_hash, model_dir, backend, arena_bytes=arena)


@contextmanager
def build_lock(root: Path):
    """Held while building from a bundle: test workers building for several boards share its sources."""
    with (root / ".build.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def callgraph_files(elf: Path) -> list[Path]:
    """GCC's call graphs (.ci) of an MCU firmware: <elf>-<source>.ci beside it, NNoM's in nnom/, CMSIS-NN's in cmsis/."""
    return sorted([*elf.parent.glob(f"{elf.name}-*.ci"), *(elf.parent / "nnom").glob("*.ci"), *(elf.parent / "cmsis").glob("*.ci")])


def firmware_stack(firmware: "Firmware", root: str | None = None) -> StackEstimate:
    """The worst-case stack of a built MCU firmware, from its reset handler or from the function named root
    (e.g. th_run_measuring_stack: what the firmware measures at run time), interrupts included."""
    return estimate_stack(firmware.path, callgraph_files(firmware.path), root, dict(firmware.recursion_bounds))


def recursion_bounds(graph: dict, model_dir: Path) -> dict[str, int]:
    """Recursion whose depth the build knows, for the stack estimate: function -> the most activations
    of it at once. The standalone row pipeline (device/kernels/row_pipeline.c) hands each output row
    to the next stage by calling stage_row again: one activation per stage, and each stage is one
    conv2d or maxpool layer of the device graph. A generator can declare more in model_symbols.json
    ("recursion_bounds": {name: depth}), which wins."""
    bounds = {"stage_row": max(1, sum(layer.get("op") in ("conv2d", "maxpool") for layer in graph.get("layers", [])))}
    symbols = model_dir / SYMBOLS_FILE
    declared = json.loads(symbols.read_text()).get("recursion_bounds", {}) if symbols.is_file() else {}
    return {**bounds, **{name: int(depth) for name, depth in declared.items()}}


def build_firmware(bundle, board: Board, backend: str = "standalone") -> Firmware:
    """Generate the model's C under <bundle>/device/<backend>/ and build <bundle>/build/<board>-<backend>/firmware.elf."""
    if "unsupported" in bundle.graph:
        raise SemhilError(f"bundle {bundle.path} has no device graph for a board: {bundle.graph['unsupported']}")
    if board.run_kind == "micropython":
        return _build_module(bundle, board, backend)
    cc = compiler_for(board)
    root = bundle.path.resolve()  # the compiler runs in a folder of its own
    with build_lock(root):
        return _build(bundle, board, backend, cc, root)


def _build_module(bundle, board: Board, backend: str) -> Firmware:
    """A MicroPython board's "firmware": the bundle's native module (semhil.micropython.natmod)."""
    from .micropython.natmod import module_firmware
    if backend != "standalone":
        raise SemhilError(f"board {board.name} runs the device half as a MicroPython module, built from the standalone "
                          f"backend only, not {backend}: use --backend standalone")
    return module_firmware(bundle, board)


def _build(bundle, board: Board, backend: str, cc: str, root: Path) -> Firmware:
    out_dir = root / "build" / f"{board.name}-{backend}"
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = root / "device" / backend
    dirs = [DEVICE_DIR / "core", DEVICE_DIR / "kernels", *(DEVICE_DIR / "ports" / d for d in board.port_dirs), out_dir]
    (out_dir / "board_config.h").write_text(board_config(board))
    target_flags = [] if board.family == "native" else CPU_FLAGS[board.core] + ["-ffunction-sections", "-fdata-sections"]
    stack_flags = STACK_FLAGS if board.is_mcu else []
    generate_sources(bundle.graph, bundle.hash, backend, model_dir, out_dir / "sizer")
    includes, objects = [], []
    if backend == "nnom":
        home = nnom_home()
        dirs.append(DEVICE_DIR / "nnom")
        includes = _nnom_includes(home)
        log_flags = ["-DSEMHIL_NNOM_LOG_STDERR"] if board.family == "native" else []  # NNoM's logs in the board's output
        objects = _nnom_objects(cc, target_flags + stack_flags + log_flags, home, out_dir / "nnom")
    elif backend == "cmsis-nn":
        home = cmsis_home()
        dirs.append(DEVICE_DIR / "peers" / "cmsis_nn")
        includes = _cmsis_includes(home)
        objects = _cmsis_objects(cc, target_flags + stack_flags, home, out_dir / "cmsis")
    sources = sorted(str(p) for d in [*dirs, model_dir] for p in d.glob("*.c") if p.name != "nnom_sizer.c")
    cmd = [cc, *COMMON_FLAGS, *target_flags, *stack_flags, *[f"-I{d}" for d in [*dirs, model_dir]], *includes]
    inputs = [*sources, *map(str, objects)]
    what = f"build for {board.name} ({backend} backend)"

    def link(name: str, log: str, flash_bytes: int | None = None, ram_bytes: int | None = None,
             stack_bytes: int | None = None) -> Path:
        """Compile and link <name>.elf (MCU: with the memory given), then check the model is in it."""
        elf, map_path = out_dir / f"{name}.elf", out_dir / f"{name}.map"
        for stale in [*out_dir.glob(f"{name}.elf-*.su"), *out_dir.glob(f"{name}.elf-*.ci")]:
            stale.unlink()
        if board.is_mcu:
            script = linker_script(board, out_dir / f"{name}.ld", flash_bytes, ram_bytes, stack_bytes)
            full = [*cmd, *MCU_LINK_FLAGS, f"-Wl,-Map={map_path}", "-T", str(script), *inputs, "-o", str(elf), "-lm"]
        else:
            full = [*cmd, "-D_GNU_SOURCE", f"-Wl,-Map={map_path}", *inputs, "-o", str(elf), "-lm"]
        _compile(full, out_dir / log, what if name == "firmware" else f"measuring the firmware for {board.name}")
        try:
            check_model_linked(elf, model_dir / SYMBOLS_FILE, board.name, map_path)
        except ModelMissing:
            elf.unlink()  # never a firmware without its model to run or flash; the map file says what went
            raise
        return elf

    bounds = recursion_bounds(bundle.graph, model_dir)

    def stack_of(elf: Path) -> StackEstimate:
        return estimate_stack(elf, callgraph_files(elf), recursion_bounds=bounds)

    if not board.is_mcu:
        elf = link("firmware", "build.log")
        stack = StackEstimate(None, notes=("native: the firmware runs on the host process's stack; not estimated",))
        return Firmware(elf, board, bundle.hash, memory_report(elf).with_stack(stack), tuple(sorted(bounds.items())))
    _, ram_origin = board.memory_origins
    try:
        elf = link("firmware", "build.log", board.flash_bytes, board.ram_bytes, board.stack_bytes)
        measured = elf
    except ModelTooLarge:  # link again with room to spare to measure the firmware, then decide
        measured = link("measure", "measure.log", MEASURING_BYTES, MEASURING_BYTES)
    memory, stack = memory_report(measured), stack_of(measured)
    static = max(memory.ram_static_bytes, static_ram_extent(measured, ram_origin))
    try:
        region, note = stack_region(board, memory.flash_bytes, static, stack, out_dir)
    finally:
        if measured.name == "measure.elf":
            for path in [measured, *out_dir.glob("measure.elf-*.su"), *out_dir.glob("measure.elf-*.ci")]:
                path.unlink()
    if measured.name == "measure.elf" or region != board.stack_bytes:
        elf = link("firmware", "build.log", board.flash_bytes, board.ram_bytes, region)
        memory, stack = memory_report(elf), stack_of(elf)
    return Firmware(elf, board, bundle.hash, memory.with_stack(stack, (note,) if note else ()), tuple(sorted(bounds.items())))

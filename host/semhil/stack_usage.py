"""The worst-case stack of a Cortex-M firmware, worked out at build time from GCC's own data.

Every firmware source is compiled with -fstack-usage -fcallgraph-info=su: GCC writes, next to the
ELF, a .su file (each function's frame) and a .ci file (a VCG call graph whose nodes carry the same
frame sizes). The estimate is the deepest path from the reset handler through that graph, plus the
deepest interrupt handler on top of it (handlers run on the same stack) with its exception frame.

What GCC's data cannot say is filled in as follows (each rule errs on the side of more stack):
- Indirect calls (the .ci's __indirect_call node) go to functions whose address the firmware
  takes: the Thumb function addresses that R_ARM_ABS32 relocations store outside the vector table
  of the linked ELF (linked with --emit-relocs), each with the function that stores it. An
  indirect call in th_run_measuring_stack (CALLBACK_RUNNERS) is taken to call the deepest of the
  jobs its callers hand it (the functions whose address its callers take: the core's run_model or
  run_chunk, from main); any other indirect call (the row pipeline's tail, NNoM's layer->run), the
  deepest of every function whose address is taken anywhere else. Sound as long as a job's address
  is handed only to th_run_measuring_stack, as the core does; without the split, the core's job
  would look like a target of the model's own pointers and every such model like a recursion.
- Library functions (newlib, libgcc: memcpy, memset, ldexpf, ...) have no .su: a call to a function
  that no .ci defines counts LIBRARY_CALL_BYTES, the whole library call included (newlib nano's
  memset pushes 12 bytes, ldexpf then scalbnf 24, libgcc's __aeabi_uldivmod then __udivmoddi4 48).
  GCC 12 also records its helper calls (libgcc's __aeabi_*) as call-graph edges: counted the same way.
- Recursion and dynamic stack (alloca, variable-length arrays) have no bound GCC can give: the
  estimate is then "unbounded" (None) with a note naming the cycle or the function, never a figure.
  The one exception is recursion whose depth the build knows (recursion_bounds: the most
  activations of a function there can be at once): the standalone row pipeline hands each row to
  the next stage by calling stage_row again, once per stage (build.recursion_bounds).
- Interrupt handlers do not nest: the ports leave every interrupt at its reset priority, so no
  handler preempts another; a fault taken inside a handler only spins (Default_Handler).
"""
from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

LIBRARY_CALL_BYTES = 128
# Exception entry on a Cortex-M4F/M7 with the FPU in use: the extended frame of 26 words, plus the
# word the core may add to keep the stack 8-byte aligned.
EXCEPTION_FRAME_BYTES = 26 * 4 + 4
INDIRECT = "__indirect_call"
CALLBACK_RUNNERS = ("th_run_measuring_stack",)  # th_port.h: runs fn(arg), the job its caller hands it
R_ARM_ABS32 = 2
VECTOR_SECTION = ".isr_vector"

NODE = re.compile(r'^node: \{ title: "([^"]*)" label: "((?:[^"\\]|\\.)*)"')
EDGE = re.compile(r'^edge: \{ sourcename: "([^"]*)" targetname: "([^"]*)"')
FRAME = re.compile(r"\\n(\d+) bytes \(([a-z,]+)\)$")


class Unbounded(Exception):
    """The call graph has no finite worst case: recursion, dynamic stack, an indirect call with no target."""


@dataclass(frozen=True)
class Function:
    title: str             # the .ci node: "name" for a global function, "/path/file.c:name" for a static one
    frame_bytes: int
    qualifier: str         # static, dynamic or "dynamic,bounded" (GCC's -fstack-usage qualifiers)


@dataclass
class CallGraph:
    functions: dict[str, Function]
    calls: dict[str, set[str]]

    def name(self, title: str) -> str:
        return title.rsplit(":", 1)[-1]


def parse_callgraph(paths) -> CallGraph:
    """The call graph of GCC's .ci files (VCG text). A node with a frame size is a function defined
    in that file; one without is a callee defined elsewhere (or nowhere: a library function)."""
    functions: dict[str, Function] = {}
    calls: dict[str, set[str]] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if m := NODE.match(line):
                title, label = m.groups()
                frame = FRAME.search(label)
                if frame:
                    size, qualifier = int(frame.group(1)), frame.group(2)
                    known = functions.get(title)
                    if known is None or size > known.frame_bytes:  # a static inline in a header, compiled twice
                        functions[title] = Function(title, size, qualifier)
            elif m := EDGE.match(line):
                source, target = m.groups()
                calls.setdefault(source, set()).add(target)
    return CallGraph(functions, calls)


@dataclass(frozen=True)
class StackEstimate:
    bytes: int | None                 # None: unbounded (see notes)
    path: tuple[str, ...] = ()        # the deepest path: thread mode from the reset handler, then "+ handler ..."
    notes: tuple[str, ...] = ()


def worst_case(graph: CallGraph, root: str, indirect_targets=(), library_bytes: int = LIBRARY_CALL_BYTES,
               memo: dict | None = None, recursion_bounds: dict[str, int] | None = None) -> tuple[int, tuple[str, ...]]:
    """The deepest stack of any call chain from root, and that chain (function names). Calls to a
    function the graph does not define count library_bytes; an indirect call (the .ci's
    __indirect_call) in function F calls the deepest of indirect_targets(F) (or of indirect_targets,
    a list for every F). recursion_bounds: function name -> the most activations of it there can
    be at once; a cycle through such a function is followed that many times. Raises Unbounded on
    any other recursion, on dynamic stack or on an indirect call with no target."""
    memo = {} if memo is None else memo
    bounds = recursion_bounds or {}
    targets_of = indirect_targets if callable(indirect_targets) else (lambda caller: indirect_targets)
    visiting: list[str] = []

    def depth(title: str) -> tuple[int, tuple[str, ...]] | None:
        """None: a call that cannot happen (one more activation than the function's bound)."""
        name = graph.name(title)
        if title in visiting:
            if name in bounds:
                if visiting.count(title) >= bounds[name]:
                    return None
            elif not any(graph.name(t) in bounds for t in visiting[len(visiting) - visiting[::-1].index(title):]):
                cycle = [graph.name(t) for t in visiting[visiting.index(title):]] + [name]
                raise Unbounded(f"recursion: {' -> '.join(cycle)}")
        # what is below a function depends on how many more times the bounded ones on the stack may recur
        key = (title, tuple(sorted((t, visiting.count(t)) for t in set(visiting) if graph.name(t) in bounds)))
        if key in memo:
            return memo[key]
        if title not in graph.functions:
            memo[key] = (library_bytes, (f"{name} (library, {library_bytes} B allowed)",))
            return memo[key]
        function = graph.functions[title]
        if function.qualifier == "dynamic":
            raise Unbounded(f"dynamic stack (alloca or a variable-length array) in {name}")
        visiting.append(title)
        deepest, below = 0, ()
        for callee in sorted(graph.calls.get(title, ())):
            if callee == INDIRECT:
                targets = list(targets_of(title))
                if not targets:
                    raise Unbounded(f"an indirect call in {name} with no function whose address is taken")
                chains = [(r[0], ("(indirect call)", *r[1])) for r in map(depth, targets) if r is not None]
            else:
                chains = [r for r in [depth(callee)] if r is not None]
            for size, chain in chains:
                if size > deepest:
                    deepest, below = size, chain
        visiting.pop()
        memo[key] = (function.frame_bytes + deepest, (name, *below))
        return memo[key]

    return depth(root)


@dataclass(frozen=True)
class ElfFunctions:
    """What the stack estimate needs from the linked ELF."""
    titles_at: dict[int, list[str]]   # function start address (Thumb bit cleared) -> its possible .ci titles
    reset: int | None                 # the reset handler's address (vector 1)
    handlers: tuple[int, ...]         # the other exception and interrupt handlers in the vector table
    taken_in: dict[int, set[int]]     # function whose address is stored outside the vector table -> the functions storing it
    names: dict[int, str]


def read_elf_functions(elf_path: Path) -> ElfFunctions:
    with elf_path.open("rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        titles_at: dict[int, list[str]] = {}
        names: dict[int, str] = {}
        source = ""
        for sym in symtab.iter_symbols():
            kind, bind = sym["st_info"]["type"], sym["st_info"]["bind"]
            if kind == "STT_FILE":
                source = sym.name
            elif kind == "STT_FUNC" and sym["st_shndx"] != "SHN_UNDEF":
                address = sym["st_value"] & ~1
                names.setdefault(address, sym.name)
                title = sym.name if bind != "STB_LOCAL" else f"{source}:{sym.name}"  # matched by suffix below
                titles_at.setdefault(address, []).append(title)
        vectors = elf.get_section_by_name(VECTOR_SECTION)
        reset, handlers = None, []
        if vectors is not None:
            words = struct.unpack_from(f"<{vectors['sh_size'] // 4}I", vectors.data())
            reset = words[1] & ~1 if len(words) > 1 else None
            handlers = sorted({w & ~1 for w in words[2:] if w and (w & ~1) in titles_at})
        starts = sorted(titles_at)
        sizes = {sym["st_value"] & ~1: sym["st_size"] for sym in symtab.iter_symbols() if sym["st_info"]["type"] == "STT_FUNC"}
        taken_in: dict[int, set[int]] = {}
        for section in elf.iter_sections():
            if not isinstance(section, RelocationSection):
                continue
            target = elf.get_section(section["sh_info"])
            if target.name in (VECTOR_SECTION, "") or not target["sh_flags"] & 2:  # SHF_ALLOC: code and data only
                continue
            data, base = target.data(), target["sh_addr"]
            for reloc in section.iter_relocations():
                if reloc["r_info_type"] != R_ARM_ABS32 or target["sh_type"] == "SHT_NOBITS":
                    continue
                place = reloc["r_offset"]
                if 0 <= place - base <= len(data) - 4:
                    value = struct.unpack_from("<I", data, place - base)[0]
                    if value & 1 and (value & ~1) in titles_at:  # a Thumb function's address
                        i = bisect.bisect_right(starts, place) - 1  # the function whose code (or literal pool) holds it
                        holder = starts[i] if i >= 0 and place < starts[i] + max(sizes.get(starts[i], 0), 1) else -1
                        taken_in.setdefault(value & ~1, set()).add(holder)
    return ElfFunctions(titles_at, reset, tuple(handlers), taken_in, names)


def _title_of(graph: CallGraph, candidates: list[str]) -> str | None:
    """The .ci title of an ELF function: the global name as it is, a static one as file:name."""
    for candidate in candidates:
        if ":" not in candidate:
            if candidate in graph.functions:
                return candidate
            continue
        source, name = candidate.rsplit(":", 1)
        matches = [t for t in graph.functions if t.endswith(f"/{source}:{name}") or t == f"{source}:{name}"]
        if matches:
            return max(matches, key=lambda t: graph.functions[t].frame_bytes)
    return None


def indirect_targets(graph: CallGraph, elf: ElfFunctions):
    """Where an indirect call in a function may go (see the module's docstring): from a function of
    CALLBACK_RUNNERS, the jobs its callers hand it; from any other, every function whose address is
    taken elsewhere than in those callers. Returns a function: caller's title -> target titles."""
    def title(address: int) -> str:
        return _title_of(graph, elf.titles_at.get(address, [])) or elf.names.get(address, hex(address))

    hand_over = {t for t, callees in graph.calls.items() if any(graph.name(c) in CALLBACK_RUNNERS for c in callees)}
    jobs, general = [], []
    for address, holders in sorted(elf.taken_in.items()):
        holder_titles = {title(h) if h >= 0 else "" for h in holders}  # "": stored in data, not by a function
        if holder_titles & hand_over:
            jobs.append(title(address))
        if holder_titles - hand_over:
            general.append(title(address))
    return lambda caller: jobs if graph.name(caller) in CALLBACK_RUNNERS else general


def estimate_stack(elf_path: Path, ci_files, root: str | None = None,
                   recursion_bounds: dict[str, int] | None = None) -> StackEstimate:
    """The worst-case stack of the linked Cortex-M firmware elf_path, compiled with the .ci files
    ci_files: the deepest path from the reset handler (or from the function named root), plus the
    deepest interrupt handler of the vector table and its exception frame. recursion_bounds: see worst_case."""
    graph = parse_callgraph(ci_files)
    elf = read_elf_functions(elf_path)
    by_name = {}
    for address, titles in elf.titles_at.items():
        for title in titles:
            by_name.setdefault(title.rsplit(":", 1)[-1], address)
    start = elf.reset if root is None else by_name.get(root)
    start_title = None if start is None else _title_of(graph, elf.titles_at.get(start, []))
    if start_title is None:
        what = "the reset handler" if root is None else root
        return StackEstimate(None, notes=(f"{what} has no call-graph data in the ELF: the stack is not estimated",))
    targets, memo = indirect_targets(graph, elf), {}

    def deepest(title: str) -> tuple[int, tuple[str, ...]]:
        return worst_case(graph, title, targets, memo=memo, recursion_bounds=recursion_bounds)

    try:
        thread, path = deepest(start_title)
        handler, handler_path = -1, ()
        for address in elf.handlers:
            title = _title_of(graph, elf.titles_at[address])
            size, chain = deepest(title) if title else (LIBRARY_CALL_BYTES, (elf.names[address],))
            if size > handler:
                handler, handler_path = size, chain
    except Unbounded as e:
        return StackEstimate(None, notes=(f"the stack is unbounded: {e}",))
    total = thread + (handler + EXCEPTION_FRAME_BYTES if handler >= 0 else 0)
    full_path = (*path, *((f"+ interrupt: {handler_path[0]}", *handler_path[1:]) if handler_path else ()))
    return StackEstimate(total, full_path)

"""Checks of a linked firmware: the model is in it.

A firmware can link without its model: when the compiler proves the inference path unreachable
(as protocol 1 did with a 224x224 RGB image, whose size its 16-bit length field could never
equal), it drops the calls, and the linker's --gc-sections then drops the model's functions,
its weights and its arena. Such a firmware builds, is small, and answers INFO; it must never be
taken for the model's. generate_model writes <model_dir>/model_symbols.json, the entry points and
constant arrays a firmware holding the model contains; check_model_linked reads them back from
the ELF's symbol table.
"""
from __future__ import annotations

import json
from pathlib import Path

from elftools.elf.elffile import ELFFile

from .errors import SemhilError

SHOWN = 5  # names of dropped symbols the error lists


class ModelMissing(SemhilError):
    """The linked firmware does not contain the model it was built for."""


def elf_symbol_sizes(elf_path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(functions, objects) defined in the ELF, name -> size in bytes. Static arrays are local
    symbols and one name can exist in several objects: the largest of that name counts."""
    functions: dict[str, int] = {}
    objects: dict[str, int] = {}
    with elf_path.open("rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if symtab is None:
            raise SemhilError(f"{elf_path} has no symbol table (stripped?): cannot check that it contains the model")
        for sym in symtab.iter_symbols():
            if sym["st_shndx"] == "SHN_UNDEF" or not sym.name:
                continue
            kind = sym["st_info"]["type"]
            table = functions if kind == "STT_FUNC" else objects if kind == "STT_OBJECT" else None
            if table is not None:
                table[sym.name] = max(table.get(sym.name, 0), sym["st_size"])
    return functions, objects


def missing_model_symbols(elf_path: Path, expected: dict) -> list[str]:
    """What of expected ({"functions": [...], "objects": {name: bytes}}) the ELF lacks: functions
    absent or empty, objects absent or smaller than listed."""
    functions, objects = elf_symbol_sizes(elf_path)
    missing = [name for name in expected.get("functions", []) if functions.get(name, 0) <= 0]
    missing += [name for name, size in expected.get("objects", {}).items() if objects.get(name, -1) < size]
    return missing


def check_model_linked(elf_path: Path, symbols_path: Path, board_name: str, map_path: Path | None) -> None:
    """Raise ModelMissing unless the linked ELF holds every function and array symbols_path lists."""
    if not symbols_path.is_file():
        raise SemhilError(f"{symbols_path} is missing: the model's generator did not say which symbols its firmware "
                          f"must contain, so {elf_path} cannot be checked; generate the model again (semhil export)")
    expected = json.loads(symbols_path.read_text())
    missing = missing_model_symbols(elf_path, expected)
    if not missing:
        return
    total = len(expected.get("functions", [])) + len(expected.get("objects", {}))
    shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
    where = f"the map file {map_path} lists what was linked and what was discarded" if map_path else "no map file was written"
    raise ModelMissing(
        f"the firmware built for {board_name} does not contain the model: {len(missing)} of its {total} functions "
        f"and weight arrays were dropped ({shown}). Likely cause: the compiler proved the inference path "
        f"unreachable (no image chunk can ever pass the core's checks, e.g. a size no frame can carry), so the "
        f"model's functions, weights and arena were removed at link time; {where}")

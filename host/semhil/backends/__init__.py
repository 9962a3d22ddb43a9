"""Code generators: a device graph in, the C of one backend out (model.h, model.c, ...)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import SemhilError
from . import standalone

BACKENDS = ("standalone", "nnom", "cmsis-nn")  # cmsis-nn: a peer for measurements (backends/cmsis_nn.py)


def generate_model(graph: dict, bundle_hash: str, out_dir: Path, backend: str = "standalone", **options) -> Path:
    """Write the generated sources of `backend` for `graph` into out_dir; returns out_dir.
    options go to the backend's generator (nnom: arena_bytes)."""
    if "unsupported" in graph:
        raise SemhilError(f"this bundle has no device graph for a board: {graph['unsupported']}")
    if backend == "standalone":
        files = standalone.generate(graph, bundle_hash)
    elif backend == "nnom":
        from . import nnom
        files = nnom.generate(graph, bundle_hash, **options)
    elif backend == "cmsis-nn":
        from . import cmsis_nn
        files = cmsis_nn.generate(graph, bundle_hash)
    else:
        raise SemhilError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    files[SYMBOLS_FILE] = json.dumps(model_symbols(files["model.c"]), indent=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("*.[ch]"), out_dir / SYMBOLS_FILE]:
        stale.unlink(missing_ok=True)
    for name, text in files.items():
        (out_dir / name).write_text(text)
    return out_dir


SYMBOLS_FILE = "model_symbols.json"
ENTRY_POINTS = ("device_half_init", "device_half_begin", "device_half_rows", "device_half_end")
FOLDABLE_BYTES = 64  # a smaller constant array may be folded into the code that reads it (e.g. 10 biases as immediates)
C_TYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4}
CONST_ARRAY = re.compile(r"^static const (\w+) (\w+)\[\](?: __attribute__\(\(aligned\(\d+\)\)\))? = \{([^}]*)\};", re.MULTILINE)


def model_symbols(source: str) -> dict:
    """What a firmware holding this model must contain: its entry points and its constant arrays of
    FOLDABLE_BYTES or more (weights, tables), by name with their size in bytes; build checks the linked
    ELF for them."""
    objects = {name: C_TYPE_BYTES[ctype] * (values.count(",") + 1) for ctype, name, values in CONST_ARRAY.findall(source)
               if ctype in C_TYPE_BYTES}
    return {"functions": list(ENTRY_POINTS), "objects": {name: size for name, size in objects.items() if size >= FOLDABLE_BYTES}}

"""Code generators: a device graph in, the C of one backend out (model.h, model.c, ...)."""
from __future__ import annotations

from pathlib import Path

from ..errors import SemhilError
from . import standalone

BACKENDS = ("standalone", "nnom")


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
    else:
        raise SemhilError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.[ch]"):
        stale.unlink()
    for name, text in files.items():
        (out_dir / name).write_text(text)
    return out_dir

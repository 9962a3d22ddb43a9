"""A folder per run, never reused, and a `latest` link to the newest finished one."""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

LATEST = "latest"


def new_run_id() -> str:
    """UTC start time to the second, then a random suffix: sorts by time, unique across processes."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def new_run_dir(parent: Path) -> Path:
    """Create parent/<new run id>/ for one run; no other run ever gets this folder."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    while True:
        path = Path(parent) / new_run_id()
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def mark_latest(run_dir: Path) -> Path:
    """Point <parent>/latest at run_dir (a relative link, swapped in atomically); returns the link."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    staged = run_dir.parent / f".{LATEST}-{secrets.token_hex(4)}"
    os.symlink(run_dir.name, staged)
    os.replace(staged, link)
    return link


def write_atomically(path: Path, text: str) -> None:
    """A reader sees the old file or the whole new one, never half of it."""
    partial = Path(path).with_name(Path(path).name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)

"""JSON-lines logs written as results arrive: a crash can leave the last line half-written."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


def read_whole_lines(path: Path, keep: Callable[[int, dict], bool] = lambda i, record: True) -> list[dict]:
    """The records of a log up to the first line that is half-written or that `keep(i, record)` refuses;
    the file is cut there, so appending continues it cleanly. A missing file has none."""
    records, whole_bytes = [], 0
    if not Path(path).exists():
        return records
    with open(path, "rb") as log:
        for line in log:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if not line.endswith(b"\n") or not keep(len(records), record):
                break
            records.append(record)
            whole_bytes += len(line)
    with open(path, "r+b") as log:
        log.truncate(whole_bytes)
    return records


def append_line(log, record: dict) -> None:
    """Append one record to an open log and push it to disk before going on."""
    log.write(json.dumps(record) + "\n")
    log.flush()
